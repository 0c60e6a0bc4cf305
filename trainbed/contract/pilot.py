"""``pilot.json`` (contract): what ``trainbed pilot`` measured and what it predicts.

The pilot runs each distinct design point for a few iterations, measures the iteration-time study's
model there (the first iteration, TMiAvg = the mean of the remaining ones, the validation time per
epoch) and the start-up overhead around training, and predicts from them every trial's train time
(``train_time_s``), its worker wall time (``wall_time_s``) and its duration as the driver sees it,
so the campaign's wall time. The orchestrator writes it (``DIR/<campaign>/pilot.json``); the
analysis reads it back and sets each prediction beside the measured time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainbed.contract.records import atomic_write_text

PILOT_SCHEMA = "trainbed.io/pilot/v1"


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class PointMeasure(_Record):
    """One design point's pilot run and the model fitted to it (times in seconds)."""

    #: The design point: factor name -> level as written.
    levels: dict[str, Any]
    #: The pilot trial's ID (in the pilot's own results directory).
    pilot_trial_id: str
    status: str
    reason: str = ""
    #: Iterations the pilot trained (rank 0), and a full epoch's iterations.
    iterations: int | None = None
    steps_per_epoch: int | None = None
    #: The iteration-time study's model: the first iteration, and TMiAvg, the mean of the others.
    first_iteration_s: float | None = None
    tmi_avg_s: float | None = None
    #: Validation (with the test pass) per epoch, and what else each epoch costs beyond its
    #: training loop and validation (shard bookkeeping, TensorBoard, the stopping broadcast).
    val_time_per_epoch_s: float | None = None
    epoch_overhead_s: float | None = None
    #: Inside the worker's clock but outside the epochs: rendezvous, data, model, outputs.
    startup_s: float | None = None
    #: Outside the worker's clock: process start, imports, the noise guard's calibrations,
    #: the executor's polling; the driver's duration minus ``wall_time_s``.
    launch_s: float | None = None


class TrialPrediction(_Record):
    """One trial of the campaign, predicted from its design point's pilot."""

    trial_id: str
    levels: dict[str, Any] = Field(default_factory=dict)
    #: Epochs and iterations the prediction assumes (the planned budget: a trial with an
    #: accuracy target may stop earlier, so its prediction is an upper bound).
    epochs: int
    iterations: int | None = None
    train_time_s: float | None = None
    wall_time_s: float | None = None
    duration_s: float | None = None
    note: str = ""


class PilotRecord(_Record):
    """``pilot.json``."""

    schema_: str = Field(PILOT_SCHEMA, alias="schema")
    campaign: str
    backend: str = "local"
    #: Iterations each pilot trial trained (``--iterations``).
    iterations: int
    created_at: str | None = None
    #: The pilot's own wall time, seconds.
    pilot_wall_time_s: float | None = None
    #: Trials at once when the campaign runs (its predicted wall time divides by it).
    concurrency: int = 1
    points: list[PointMeasure] = Field(default_factory=list)
    trials: list[TrialPrediction] = Field(default_factory=list)
    #: Sum of the trials' predicted durations / concurrency; null when a point has no model.
    campaign_wall_time_s: float | None = None
    notes: list[str] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def write_pilot(path: Path, record: PilotRecord) -> None:
    atomic_write_text(path, record.to_json() + "\n")


def read_pilot(path: Path) -> PilotRecord | None:
    """The pilot's record, or ``None`` when there is none."""
    if not path.exists():
        return None
    return PilotRecord.model_validate_json(path.read_text(encoding="utf-8"))
