"""The files a trial leaves behind (contract, versioned): their fields, tags and columns, and
the atomic writers and readers of result.json and timestamps.jsonl.

The worker writes them, the executors fill in a result when the worker could not (an OOM kill, a
timeout) through :func:`amend_result`, the one writer after the worker, and the analysis reads
them. Where they go is :mod:`trainbed.contract.layout`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from trainbed.contract.errors import RecordError
from trainbed.contract.host import HostInfo
from trainbed.contract.layout import TrialLayout
from trainbed.contract.noise import LoadSamples, RankNoise
from trainbed.contract.record_file import read_model

RESULT_SCHEMA = "trainbed.io/result/v1"


#: Columns of ``iterations/rank-<r>.csv``. ``step`` counts from 1 within the epoch and
#: ``global_step`` from 1 within the trial. ``data_wait_s`` is the time blocked on the DataLoader,
#: ``compute_s`` forward + backward + optimizer step (synchronised on GPU), ``step_s`` their sum
#: plus bookkeeping. On GPU, data wait includes the host-to-device copy and compute is the
#: device's time from the copied batch to the step's last kernel, both from CUDA events. The
#: first iteration of the trial is ``global_step == 1``. Files written
#: before the communication columns have exactly these eight, and readers accept them.
ITERATION_BASE_COLUMNS: tuple[str, ...] = (
    "rank",
    "epoch",
    "step",
    "global_step",
    "samples",
    "data_wait_s",
    "compute_s",
    "step_s",
)
#: The step's all-reduce traffic (added in v1): ``allreduce_bytes`` is the payload this rank
#: all-reduced in the step (DDP's gradient buckets, or local SGD's parameter averaging; 0 when
#: none), ``allreduce_s`` the wall time during which at least one of those all-reduces was in
#: flight (part of ``compute_s``), and ``allreduce_bps`` the achieved bus bandwidth in bits/s:
#: ``allreduce_bytes * 8 * 2(n-1)/n / allreduce_s``, the bits each rank sends per second in a
#: ring all-reduce, comparable with ``resources.bandwidth``; empty when the step all-reduced
#: nothing.
ITERATION_COMM_COLUMNS: tuple[str, ...] = ("allreduce_bytes", "allreduce_s", "allreduce_bps")
ITERATION_COLUMNS: tuple[str, ...] = ITERATION_BASE_COLUMNS + ITERATION_COMM_COLUMNS

#: Stable TensorBoard scalar tags (rank 0 writes them, the step is the 1-based epoch).
TB_TAGS: dict[str, str] = {
    "accuracy per epoch": "validation accuracy after each epoch (the tag the Fashion-MNIST "
    "2^(4-1) resource study reads), fraction",
    "train/loss": "mean training loss of the epoch over all ranks",
    "train/accuracy": "training accuracy of the epoch over all ranks, fraction",
    "val/loss": "validation loss after the epoch",
    "val/accuracy": "validation accuracy after the epoch, fraction",
    "test/accuracy": "accuracy on the whole test set after the epoch, fraction",
    "time/epoch_train_s": "training time of this epoch alone, seconds (never cumulative)",
    "time/epoch_val_s": "validation (and test) time of this epoch, seconds",
    "time/epoch_test_s": "test-set evaluation time of this epoch alone (part of epoch_val_s), s",
    "time/elapsed_s": "time-to-accuracy clock at the end of the epoch's validation: wall seconds "
    "since the start of training, test-set passes excluded",
    "time/data_wait_s": "time blocked on the DataLoader during the epoch, seconds",
    "time/compute_s": "forward+backward+step time during the epoch, seconds",
    "throughput/samples_per_s": "training samples per second of this epoch, all ranks",
}

Status = Literal["succeeded", "failed", "oom_killed", "timed_out", "terminated"]
STATUSES: tuple[str, ...] = Status.__args__  # type: ignore[attr-defined]


class EpochRecord(BaseModel):
    """One epoch's numbers, as kept in ``Result.epochs``."""

    model_config = ConfigDict(extra="allow")

    epoch: int
    train_time_s: float
    val_time_s: float
    train_loss: float | None = None
    train_accuracy: float | None = None
    val_loss: float | None = None
    val_accuracy: float | None = None
    test_accuracy: float | None = None
    samples_per_s: float | None = None
    data_wait_s: float | None = None
    compute_s: float | None = None
    #: Test-set evaluation time alone, seconds; a part of ``val_time_s`` (added in v1, optional).
    test_time_s: float | None = None
    #: The time-to-accuracy clock at the end of this epoch's validation: wall seconds since the
    #: start of training, test-set passes excluded. ``time_to_accuracy_s`` is its value at the
    #: epoch that met the target (added in v1, optional).
    elapsed_s: float | None = None


class PowerSummary(BaseModel):
    """GPU power sampled during the training epochs, all of a trial's GPUs together."""

    model_config = ConfigDict(extra="allow")

    sample_hz: float
    samples: int
    mean_w: float | None = None
    peak_w: float | None = None
    utilization_mean_pct: float | None = None
    memory_used_max_bytes: int | None = None
    #: Clock throttle reasons seen in any sample (NVML names, e.g. ``sw_power_cap``).
    throttle_reasons: list[str] = Field(default_factory=list)


class RankGpu(BaseModel):
    """One GPU a rank was given: the host's index, its UUID and model."""

    model_config = ConfigDict(extra="allow")

    rank: int
    index: int
    uuid: str
    model: str


class Result(BaseModel):
    """``result.json`` (contract). Accuracies are fractions, times seconds, energy joules.

    Fields the run could not produce stay ``None``; energy that nothing measured is ``None`` with
    ``energy_source`` saying why, never an invented number. The worker also writes these extra
    keys (``model_extra``): ``target_met_epoch`` (1-based epoch the target was first met, or
    null) and ``threads`` (torch's thread count); docs/worker-outputs.md lists every field.
    """

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(RESULT_SCHEMA, alias="schema")
    campaign: str | None = None
    trial_id: str | None = None
    status: Status
    reason: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    #: When the trial's Job entered a Kueue queue (created suspended), and when Kueue last
    #: admitted it; null without a queue. The wait between them is never part of the times
    #: below, which the worker measures once it runs (added in v1, optional).
    queued_at: str | None = None
    admitted_at: str | None = None
    #: Kueue's reason for each time it preempted (evicted) the trial, which then waited and ran
    #: again; such a re-run is not a failed attempt and does not count against the retries.
    #: Null where it never was (added in v1, optional).
    preemptions: list[str] | None = None
    #: Other Workloads Kueue admitted in the trial's namespace while it ran (other campaigns'
    #: trials, other teams' Jobs): work that may have shared its nodes. Null where none was or
    #: nothing could see (no queue). The Noise section names these trials (added in v1).
    admitted_beside: list[str] | None = None
    wall_time_s: float | None = None
    train_time_s: float | None = None
    epochs_run: int = 0
    final_accuracy: float | None = None
    best_accuracy: float | None = None
    test_accuracy: float | None = None
    time_to_accuracy_s: float | None = None
    energy_to_accuracy_j: float | None = None
    samples_per_s: float | None = None
    energy_j: float | None = None
    energy_source: str = "none"
    first_iteration_s: float | None = None
    validation_time_s: float | None = None
    epochs: list[EpochRecord] = Field(default_factory=list)
    enforcement: dict[str, Any] = Field(default_factory=dict)
    seeds: dict[str, int] = Field(default_factory=dict)
    world_size: int | None = None
    device: str | None = None
    versions: dict[str, str] = Field(default_factory=dict)
    #: Training iterations in one full epoch on rank 0 (``len(DataLoader)``): with the
    #: iteration model it predicts a trial's train time from a pilot (added in v1, optional).
    steps_per_epoch: int | None = None
    #: The noise guard (:mod:`trainbed.contract.noise`): per rank, where it ran, a calibration
    #: before and after the trial under its own CPU limit, and the host's load over the trial.
    #: Null when no worker wrote one (added in v1, optional).
    noise: list[RankNoise] | None = None
    #: The executor's: the other trials of the campaign that ran at the same time as this one;
    #: null when the executor did not record it (Kubernetes: the analysis derives it from the
    #: trials' start and finish times).
    concurrent_trials: list[str] | None = None
    #: The local executor's: the host's 1-minute load average sampled while the trial ran.
    load_samples: LoadSamples | None = None
    #: Energy of the training epochs alone (start-up, validation and test passes excluded),
    #: all ranks' meters together, joules; null without a meter (added in v1, optional).
    train_energy_j: float | None = None
    #: ``train_energy_j`` per training sample, joules (added in v1, optional).
    energy_per_sample_j: float | None = None
    #: Energy by device over the same span as ``energy_j``: ``{"gpu": J, "cpu": J}``, a value
    #: null where that meter was missing (added in v1, optional).
    energy_by_device: dict[str, float | None] | None = None
    #: Each device's meter as ``energy_source`` names one (``nvml: ...``, ``rapl: ...``), or
    #: ``none: <why>``: why an ``energy_by_device`` value is null (added in v1, optional).
    energy_sources: dict[str, str] | None = None
    #: GPU power sampled during training (null without NVML, added in v1, optional).
    power: PowerSummary | None = None
    #: The sampler behind ``power`` (``nvml: 10 Hz``), or ``none: <why>`` (added in v1, optional).
    power_source: str | None = None
    #: Each rank's GPUs, as the executor assigned them (null for CPU trials, added in v1).
    gpus: list[RankGpu] | None = None
    #: What rank 0 ran on: kernel, CPU, cgroup mode, GPU stack (null in records written before
    #: it, or by an executor for a worker that never wrote one; added in v1, optional).
    host: HostInfo | None = None

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def now_iso() -> str:
    """UTC timestamp with microseconds, the format of every time in the results directory."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file + fsync + rename, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_result(trial_dir: Path, result: Result) -> Path:
    path = TrialLayout(trial_dir).result_file
    atomic_write_text(path, result.to_json() + "\n")
    return path


def read_result(trial_dir: Path) -> Result | None:
    """The trial's result, or ``None`` when there is none yet (the trial is incomplete).

    Read strictly: a number written as text, an object written as a string, an unknown status
    is a :class:`RecordError` naming the field, not a value quietly coerced. The writers are
    these models, so a record they wrote always reads back."""
    return read_model(TrialLayout(trial_dir).result_file, Result, strict=True)


def append_timestamp(
    trial_dir: Path, event: Literal["start", "stop"], rank: int, **extra: Any
) -> None:
    """Append a line to ``timestamps.jsonl``: one short O_APPEND write, so ranks never mix."""
    line = json.dumps({"event": event, "rank": rank, "time": now_iso(), **extra}) + "\n"
    path = TrialLayout(trial_dir).timestamps_file
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def amend_result(trial_dir: Path, amend: Callable[[Result | None], Result | None]) -> Result | None:
    """The one writer of ``result.json`` after the worker: reads the worker's result, hands it
    to ``amend`` and writes what ``amend`` returns, atomically; returns that.

    A missing, torn or invalid file reads as ``None`` (an unreadable result is not the worker's
    word). Where ``amend`` returns ``None`` the file is left as it is.
    """
    try:
        worker = read_result(trial_dir)
    except RecordError:
        worker = None
    result = amend(worker)
    if result is not None:
        write_result(trial_dir, result)
    return result


def read_timestamps(trial_dir: Path) -> list[dict[str, Any]]:
    """The lines of ``timestamps.jsonl`` in order; a line that is not a JSON object (the torn
    last line of a killed run) is skipped, and a missing file has none."""
    try:
        text = TrialLayout(trial_dir).timestamps_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    lines = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(line, dict):
            lines.append(line)
    return lines
