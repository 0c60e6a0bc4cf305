"""TensorBoard event files, read two ways: a fast reader of the records, and tbparse.

The fast reader walks the TFRecord framing itself (u64 length, u32 length CRC, payload, u32
payload CRC) and decodes each ``Event`` protobuf, keeping only scalars. A truncated or corrupt
file ends its read with a warning naming the file, and everything before the damage is kept: a
crashed worker's events are still data. tbparse (``SummaryReader``) is there for compatibility
with notebooks like seed 001's; it is slower because it builds TensorBoard's accumulators.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.worker.records import TB_DIR


class CorruptEventFileWarning(UserWarning):
    """An event file ended early or held a record that does not decode."""


def _scalar(value: object) -> float | None:
    if value.HasField("simple_value"):  # type: ignore[attr-defined]
        return float(value.simple_value)  # type: ignore[attr-defined]
    if value.HasField("tensor"):  # type: ignore[attr-defined]
        tensor = value.tensor  # type: ignore[attr-defined]
        if tensor.float_val:
            return float(tensor.float_val[0])
        if tensor.double_val:
            return float(tensor.double_val[0])
        if tensor.tensor_content and tensor.dtype == 1:  # DT_FLOAT
            return float(np.frombuffer(tensor.tensor_content, dtype=np.float32)[0])
    return None


def read_scalars(path: Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall_time) of every scalar in one event file."""
    from tensorboard.compat.proto import event_pb2

    data = Path(path).read_bytes()
    rows: list[tuple[str, int, float, float]] = []
    offset = 0
    end = len(data)
    event = event_pb2.Event()
    while offset < end:
        if offset + 12 > end:
            warnings.warn(
                f"{path}: truncated record header at byte {offset}; kept {len(rows)} scalars",
                CorruptEventFileWarning,
                stacklevel=2,
            )
            break
        (length,) = struct.unpack_from("<Q", data, offset)
        start = offset + 12
        stop = start + length
        if stop + 4 > end:
            warnings.warn(
                f"{path}: truncated record at byte {offset}; kept {len(rows)} scalars",
                CorruptEventFileWarning,
                stacklevel=2,
            )
            break
        try:
            event.ParseFromString(data[start:stop])
        except Exception:  # noqa: BLE001 - protobuf raises its own DecodeError type
            warnings.warn(
                f"{path}: undecodable record at byte {offset}; kept {len(rows)} scalars",
                CorruptEventFileWarning,
                stacklevel=2,
            )
            break
        offset = stop + 4
        if not event.HasField("summary"):
            continue
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                continue
            number = _scalar(value)
            if number is not None:
                rows.append((value.tag, int(event.step), number, float(event.wall_time)))
    return rows


def read_trial_scalars(trial_dir: Path, reader: str = "fast") -> pd.DataFrame:
    """All scalars of one trial's tb/ folder: columns tag, step, value, wall_time."""
    tb = Path(trial_dir) / TB_DIR
    columns = ["tag", "step", "value", "wall_time"]
    if not tb.exists():
        return pd.DataFrame(columns=columns)
    if reader == "tbparse":
        from tbparse import SummaryReader

        # tbparse 0.0.9 calls pandas APIs that pandas 3 deprecates: not ours to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning", FutureWarning))
            frame = SummaryReader(str(tb), extra_columns={"wall_time"}).scalars
        return frame[columns] if len(frame) else pd.DataFrame(columns=columns)
    rows: list[tuple[str, int, float, float]] = []
    for path in sorted(tb.rglob("events.out.tfevents.*")):
        rows.extend(read_scalars(path))
    return pd.DataFrame(rows, columns=columns)
