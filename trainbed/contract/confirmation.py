"""``confirmation.json`` (contract): what ``trainbed confirm`` predicted before it ran.

A confirmation run is the last step of a designed experiment: run the recommended configuration
again and check that it lands where the model said. The prediction is frozen here *before* the
runs, so the check cannot be tuned afterwards. Each ``trainbed confirm`` adds one block: the goal,
the configuration, the trials it ran (in ``trials/`` like every other), and each response's
predicted mean with the numbers its intervals come from. The runs are kept out of design.csv, so
the model the report fits stays the one that made the prediction; the analysis reads them back
from here. The orchestrator writes it; the analysis reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from trainbed.contract.records import atomic_write_text

CONFIRMATION_SCHEMA = "trainbed.io/confirmation/v1"


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class FrozenPrediction(_Record):
    """One response's prediction at the configuration, as the model made it.

    With ``m`` runs, the prediction interval of their mean is ``mean ± t(level, df) ·
    sqrt(se_mean² + mse / m)``; ``mse`` and ``se_mean`` are null without error df.
    """

    response: str
    unit: str
    mean: float
    se_mean: float | None = None
    mse: float | None = None
    df: int = 0
    level: float = 0.95
    #: the aliased terms the prediction assumed (empty at a design point)
    aliased: list[str] = Field(default_factory=list)


class ConfirmationBlock(_Record):
    """One ``trainbed confirm``: a configuration run ``len(trial_ids)`` times."""

    #: 1 for the first confirmation, then 2, ...
    block: int
    goal: str
    #: factor name -> level as written
    levels: dict[str, Any]
    #: factor name -> coded level (±1, or the level index)
    coded: dict[str, float]
    #: whether the configuration is one of the design's points
    design_point: bool
    trial_ids: list[str]
    predictions: list[FrozenPrediction]
    #: the runs the model was fitted on
    model_runs: int
    created_at: str | None = None


class ConfirmationRecord(_Record):
    """``confirmation.json``."""

    schema_: str = Field(CONFIRMATION_SCHEMA, alias="schema")
    campaign: str
    blocks: list[ConfirmationBlock] = Field(default_factory=list)

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)


def write_confirmation(path: Path, record: ConfirmationRecord) -> None:
    atomic_write_text(path, record.to_json() + "\n")


def read_confirmation(path: Path) -> ConfirmationRecord | None:
    """The confirmation record, or ``None`` when nothing was confirmed."""
    if not path.exists():
        return None
    return ConfirmationRecord.model_validate_json(path.read_text(encoding="utf-8"))
