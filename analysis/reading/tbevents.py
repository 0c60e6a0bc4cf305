"""TensorBoard event files, read two ways: a fast reader of the records, and tbparse.

The fast reader walks the TFRecord framing itself (u64 length, u32 masked CRC-32C of the length,
payload, u32 masked CRC-32C of the payload), checks both checksums (vectorised over all records
of a file with numpy, so checking costs little), and decodes each ``Event`` protobuf, keeping only
scalars. A damaged file is a ``CorruptEventFileWarning`` naming the file, never an exception:

- a truncated tail or a bad length checksum ends the read (the framing after it cannot be
  trusted), and everything before the damage is kept: a crashed worker's events are still data;
- a bad payload checksum, or a payload that does not decode, skips that one record (its length
  was vouched for, so the records after it are still framed correctly).

Protobuf alone would not catch a flipped bit inside a float, which is why the checksums are read.
``read_campaign_scalars`` reads a whole campaign's files in one pass. tbparse
(``SummaryReader``) is there for compatibility with the Fashion-MNIST resource study's
notebook; it is slower because it builds TensorBoard's event accumulators.
"""

from __future__ import annotations

import struct
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainbed.contract.layout import TrialLayout

SCALAR_COLUMNS = ["tag", "step", "value", "wall_time"]
_HEADER = 12  # u64 length + u32 masked CRC of the length
_FOOTER = 4  # u32 masked CRC of the payload
_DTYPES = {1: np.float32, 2: np.float64, 19: np.float16}  # TensorFlow DataType enum values


class CorruptEventFileWarning(UserWarning):
    """An event file ended early or held a record that does not check or decode."""


def _crc32c_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table[byte] = crc
    return table


_TABLE = _crc32c_table()


def crc32c_many(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C (Castagnoli) of ``data[start:start+length]`` for each pair, vectorised: one numpy
    step per byte position across all the slices (longest first, so the active ones are a
    prefix)."""
    count = len(starts)
    crc = np.full(count, 0xFFFFFFFF, dtype=np.uint32)
    if count == 0:
        return crc
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = starts[order], lengths[order]
    longest = int(lengths[0])
    # active[i] = how many slices are longer than i
    active = np.searchsorted(-lengths, -np.arange(longest), side="left")
    state = crc.copy()
    for i in range(longest):
        k = int(active[i])
        byte = data[starts[:k] + i]
        state[:k] = _TABLE[(state[:k] ^ byte) & 0xFF] ^ (state[:k] >> np.uint32(8))
    crc[order] = state ^ np.uint32(0xFFFFFFFF)
    return crc


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's checksum masking: rotate right by 15 bits and add a constant."""
    crc = crc.astype(np.uint64)
    rotated = ((crc >> np.uint64(15)) | (crc << np.uint64(17))) & np.uint64(0xFFFFFFFF)
    return ((rotated + np.uint64(0xA282EAD8)) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _walk(data: bytes) -> tuple[list[int], list[int], str]:
    """Record offsets and payload lengths by the framing alone, and why the walk stopped early."""
    end = len(data)
    headers: list[int] = []
    lengths: list[int] = []
    offset = 0
    while offset < end:
        if offset + _HEADER > end:
            return headers, lengths, f"truncated record header at byte {offset}"
        (length,) = struct.unpack_from("<Q", data, offset)
        if offset + _HEADER + length + _FOOTER > end:
            return headers, lengths, f"truncated record at byte {offset} (length {length})"
        headers.append(offset)
        lengths.append(length)
        offset += _HEADER + length + _FOOTER
    return headers, lengths, ""


def frame_records(blobs: list[bytes], names: list[str]) -> list[list[tuple[int, int]]]:
    """Per file, the (start, length) of every record payload whose checksums hold; a warning
    naming the file for the rest. The checksums of all files are computed in one vectorised
    pass, so many small files cost little more than one large one."""
    if not blobs:
        return []
    walks = [_walk(blob) for blob in blobs]
    bases = np.cumsum([0] + [len(blob) for blob in blobs])[:-1].astype(np.int64)
    head = np.concatenate(
        [np.asarray(h, dtype=np.int64) + base for (h, _, _), base in zip(walks, bases, strict=True)]
        or [np.zeros(0, np.int64)]
    )
    size = np.concatenate(
        [np.asarray(n, dtype=np.int64) for _, n, _ in walks] or [np.zeros(0, np.int64)]
    )
    buffer = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    tail = head + _HEADER + size
    head_crc = buffer[head[:, None] + np.arange(8, 12)].copy().view("<u4").ravel()
    data_crc = buffer[tail[:, None] + np.arange(4)].copy().view("<u4").ravel()
    head_ok = masked(crc32c_many(buffer, head, np.full(len(head), 8))) == head_crc
    data_ok = masked(crc32c_many(buffer, head + _HEADER, size)) == data_crc
    out: list[list[tuple[int, int]]] = []
    first = 0
    for (headers, lengths, problem), name in zip(walks, names, strict=True):
        count = len(headers)
        ok_head = head_ok[first : first + count]
        ok_data = data_ok[first : first + count]
        first += count
        if not ok_head.all():
            cut = int(np.argmin(ok_head))
            problem = f"bad length checksum at byte {headers[cut]}"
            headers, lengths, ok_data = headers[:cut], lengths[:cut], ok_data[:cut]
        if not ok_data.all():
            bad = [h for h, ok in zip(headers, ok_data, strict=True) if not ok]
            warnings.warn(
                f"{name}: {len(bad)} record(s) with a bad payload checksum (first at byte "
                f"{bad[0]}) skipped",
                CorruptEventFileWarning,
                3,
            )
        kept = [(h + _HEADER, n) for h, n, ok in zip(headers, lengths, ok_data, strict=True) if ok]
        if problem:
            warnings.warn(
                f"{name}: {problem}; kept the {len(kept)} good records before it",
                CorruptEventFileWarning,
                3,
            )
        out.append(kept)
    return out


def scalar_value(value: Any) -> float | None:
    """A summary value as a float: ``simple_value`` (torch's SummaryWriter) or a rank-0 tensor
    (``float_val``/``double_val``/``half_val`` or packed ``tensor_content``); None otherwise."""
    if value.HasField("simple_value"):
        return float(value.simple_value)
    if not value.HasField("tensor"):
        return None
    tensor = value.tensor
    if tensor.tensor_shape.dim and any(d.size > 1 for d in tensor.tensor_shape.dim):
        return None  # not a scalar (a histogram or an image)
    if tensor.float_val:
        return float(tensor.float_val[0])
    if tensor.double_val:
        return float(tensor.double_val[0])
    if tensor.tensor_content and tensor.dtype in _DTYPES:
        packed = np.frombuffer(tensor.tensor_content, dtype=_DTYPES[tensor.dtype])
        return float(packed[0]) if packed.size == 1 else None
    if tensor.half_val and tensor.dtype == 19:
        return float(np.array([tensor.half_val[0]], dtype=np.uint16).view(np.float16)[0])
    return None


def read_event_files(paths: list[Path]) -> list[list[tuple[str, int, float, float]]]:
    """Per file, (tag, step, value, wall_time) of every scalar. The hparams plugin's entries
    (session start/end and the hparams config) are not scalars and are left out."""
    from google.protobuf.message import DecodeError
    from tensorboard.compat.proto import event_pb2

    blobs: list[bytes] = []
    for path in paths:
        try:
            blobs.append(Path(path).read_bytes())
        except OSError as err:
            warnings.warn(f"{path}: unreadable event file ({err})", CorruptEventFileWarning, 2)
            blobs.append(b"")
    event = event_pb2.Event()
    results = []
    for path, blob, records in zip(
        paths, blobs, frame_records(blobs, [str(p) for p in paths]), strict=True
    ):
        rows: list[tuple[str, int, float, float]] = []
        undecodable = 0
        for start, length in records:
            try:
                event.ParseFromString(blob[start : start + length])
            except DecodeError:
                undecodable += 1
                continue
            if not event.HasField("summary"):
                continue
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "hparams":
                    continue
                number = scalar_value(value)
                if number is not None:
                    rows.append((value.tag, int(event.step), number, float(event.wall_time)))
        if undecodable:
            warnings.warn(
                f"{path}: {undecodable} record(s) that do not decode as Event skipped",
                CorruptEventFileWarning,
                2,
            )
        results.append(rows)
    return results


def read_scalars(path: Path) -> list[tuple[str, int, float, float]]:
    """(tag, step, value, wall_time) of every scalar in one event file."""
    return read_event_files([Path(path)])[0]


def event_files(trial_dir: Path) -> list[Path]:
    """A trial's event files, at any depth under tb/, in a stable order."""
    tb = TrialLayout(Path(trial_dir)).tb_dir
    return sorted(p for p in tb.rglob("*tfevents*") if p.is_file()) if tb.exists() else []


def read_campaign_scalars(trial_dirs: list[Path]) -> dict[Path, pd.DataFrame]:
    """The fast reader over many trials at once (one checksum pass for all their files)."""
    files = {trial: event_files(trial) for trial in trial_dirs}
    flat = [path for paths in files.values() for path in paths]
    rows = iter(read_event_files(flat))
    out = {}
    for trial, paths in files.items():
        trial_rows = [row for _ in paths for row in next(rows)]
        out[trial] = pd.DataFrame(trial_rows, columns=SCALAR_COLUMNS)
    return out


def read_trial_scalars(trial_dir: Path, reader: str = "fast") -> pd.DataFrame:
    """All scalars of one trial's tb/ folder (any depth): columns tag, step, value, wall_time."""
    tb = TrialLayout(Path(trial_dir)).tb_dir
    if not tb.exists():
        return pd.DataFrame(columns=SCALAR_COLUMNS)
    if reader == "tbparse":
        from tbparse import SummaryReader

        # tbparse 0.0.9 calls pandas APIs that pandas 3 deprecates: not ours to fix.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", getattr(pd.errors, "Pandas4Warning", FutureWarning))
            frame = SummaryReader(str(tb), extra_columns={"wall_time"}).scalars
        return frame[SCALAR_COLUMNS] if len(frame) else pd.DataFrame(columns=SCALAR_COLUMNS)
    if reader != "fast":
        raise ValueError(f"unknown TensorBoard reader {reader!r}: use 'fast' or 'tbparse'")
    return read_campaign_scalars([Path(trial_dir)])[Path(trial_dir)]
