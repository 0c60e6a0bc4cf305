"""Loading a results directory into pandas frames: trials, epochs and iterations.

It reads only the files the worker's record contract names (campaign.yaml, design.csv,
trials/*/result.json, iterations/rank-*.csv, tb/ events) and never talks to a cluster. A
missing or failed trial stays in the trials frame with its status, so nothing is dropped
silently; a damaged file is a warning and whatever data it still holds.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from trainbed.analysis.models.cost import COST, trial_costs
from trainbed.analysis.reading.tbevents import read_campaign_scalars, read_trial_scalars
from trainbed.contract.errors import ResultsError
from trainbed.contract.layout import (
    BLOCK_COLUMN,
    CAMPAIGN_FILE,
    DESIGN_COLUMNS,
    DESIGN_FILE,
    ResultsLayout,
    coded_column,
)
from trainbed.contract.records import ITERATION_BASE_COLUMNS, ITERATION_COLUMNS
from trainbed.contract.responses import RESPONSE_FIELDS

RESULT_COLUMNS = [
    "status",
    "reason",
    "started_at",
    "finished_at",
    "wall_time_s",
    "train_time_s",
    "epochs_run",
    "final_accuracy",
    "best_accuracy",
    "test_accuracy",
    "time_to_accuracy_s",
    "energy_to_accuracy_j",
    "samples_per_s",
    "energy_j",
    "energy_source",
    "train_energy_j",
    "energy_per_sample_j",
    "device",
    "first_iteration_s",
    "validation_time_s",
]


@dataclass
class Results:
    """A campaign's results as frames, plus the campaign spec and the factor table."""

    root: Path
    campaign: dict[str, Any]
    factors: list[dict[str, Any]]
    trials: pd.DataFrame
    epochs: pd.DataFrame
    iterations: pd.DataFrame
    warnings: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.campaign.get("metadata", {}).get("name", self.root.name))

    @property
    def factor_names(self) -> list[str]:
        return [f["name"] for f in self.factors]

    @property
    def responses(self) -> list[str]:
        return list(self.campaign.get("spec", {}).get("responses") or ["accuracy", "time"])


def _read_result(path: Path, notes: list[str]) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        message = f"{path}: unreadable result ({err}); the trial counts as missing"
        warnings.warn(message, stacklevel=3)
        notes.append(message)
        return None


def _read_campaign(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]], pd.DataFrame]:
    """campaign.yaml and design.csv, the two files a results directory cannot do without; a
    :class:`ResultsError` naming the file (and the column) when either is unusable."""
    layout = ResultsLayout(root)
    spec_file, design_file = layout.campaign_file, layout.design_file
    if not spec_file.is_file() or not design_file.is_file():
        raise ResultsError(
            f"{root}: not a results directory (it needs {CAMPAIGN_FILE} and {DESIGN_FILE}; "
            "pass DIR/<campaign>)"
        )
    try:
        campaign = yaml.safe_load(spec_file.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ResultsError(f"{spec_file}: unreadable ({_one_line(err)})") from None
    if not isinstance(campaign, dict):
        raise ResultsError(f"{spec_file}: not a campaign (expected a mapping)")
    factors = list((campaign.get("spec") or {}).get("factors") or [])
    if not factors or not all(isinstance(f, dict) and "name" in f for f in factors):
        raise ResultsError(f"{spec_file}: spec.factors is missing or has a factor with no name")
    try:
        design = pd.read_csv(design_file, dtype={"trial_id": str})
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise ResultsError(f"{design_file}: unreadable ({_one_line(err)})") from None
    required = list(DESIGN_COLUMNS)
    for factor in factors:
        required += [factor["name"], coded_column(factor["name"])]
    missing = [column for column in required if column not in design.columns]
    if missing:
        raise ResultsError(
            f"{design_file}: missing column{'s' if len(missing) > 1 else ''} " + ", ".join(missing)
        )
    if BLOCK_COLUMN in design.columns:  # optional: fold-over blocks 1, 2, ...
        blocks = pd.to_numeric(design[BLOCK_COLUMN], errors="coerce")
        if blocks.isna().any() or (blocks < 1).any() or (blocks % 1 != 0).any():
            raise ResultsError(f"{design_file}: column {BLOCK_COLUMN} holds a non-block value")
        design[BLOCK_COLUMN] = blocks.astype(int)
    return campaign, factors, design


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def load(directory: str | Path, *, tb_reader: str = "fast") -> Results:
    """Load a campaign's results directory (``DIR/<campaign>``).

    ``tb_reader`` is ``"fast"`` (trainbed's own event reader) or ``"tbparse"``. Damaged files
    are warnings (also kept in ``Results.warnings`` for the report), never exceptions.
    """
    root = Path(directory)
    campaign, factors, design = _read_campaign(root)
    layout = ResultsLayout(root)
    notes: list[str] = []
    rows = []
    epoch_rows = []
    iteration_frames = []
    scalar_frames = []
    for trial_id in design["trial_id"]:
        files = layout.trial(trial_id)
        result = _read_result(files.result_file, notes) if files.result_file.exists() else None
        row: dict[str, Any] = {"trial_id": trial_id}
        if result is None:
            row["status"] = "missing"
            row["reason"] = (
                "no result.json" if not files.result_file.exists() else "unreadable result.json"
            )
        else:
            for column in RESULT_COLUMNS:
                row[column] = result.get(column)
            row["enforcement"] = (result.get("enforcement") or {}).get("mode")
            row["world_size"] = result.get("world_size")
            for epoch in result.get("epochs") or []:
                epoch_rows.append({"trial_id": trial_id, **epoch})
        rows.append(row)
        for path in sorted(files.iterations_dir.glob("rank-*.csv")):
            try:
                frame = pd.read_csv(path)
            except (OSError, ValueError, pd.errors.ParserError) as err:
                message = f"{path}: unreadable iterations file ({err})"
                warnings.warn(message, stacklevel=2)
                notes.append(message)
                continue
            if list(frame.columns) not in (list(ITERATION_COLUMNS), list(ITERATION_BASE_COLUMNS)):
                message = f"{path}: unexpected columns {list(frame.columns)}"
                warnings.warn(message, stacklevel=2)
                notes.append(message)
                continue
            # files from before the all-reduce columns: those are unknown (NaN), not zero
            frame = frame.reindex(columns=list(ITERATION_COLUMNS))
            frame.insert(0, "trial_id", trial_id)
            iteration_frames.append(frame)
    trial_dirs = {trial_id: layout.trial(trial_id).root for trial_id in design["trial_id"]}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if tb_reader == "fast":
            by_dir = read_campaign_scalars(list(trial_dirs.values()))
        else:
            by_dir = {d: read_trial_scalars(d, tb_reader) for d in trial_dirs.values()}
    for item in caught:
        notes.append(str(item.message))
        warnings.warn(item.message, item.category, stacklevel=2)
    for trial_id, trial_dir in trial_dirs.items():
        scalars = by_dir[trial_dir]
        # the hparams metrics (step 0, "hparam/...") are per trial, not per epoch
        scalars = scalars[(scalars["step"] >= 1) & ~scalars["tag"].str.startswith("hparam/")]
        if len(scalars):
            scalars = scalars.copy()
            scalars.insert(0, "trial_id", trial_id)
            scalar_frames.append(scalars)
    results = pd.DataFrame(rows)
    trials = design.merge(results, on="trial_id", how="left")
    for response, column in RESPONSE_FIELDS.items():
        trials[response] = pd.to_numeric(trials.get(column), errors="coerce")
    trials[COST] = trial_costs(root, campaign, trials["trial_id"])  # derived: spec.cost
    epochs = pd.DataFrame(epoch_rows)
    if scalar_frames:
        tb = pd.concat(scalar_frames, ignore_index=True)
        wide = (
            tb.pivot_table(
                index=["trial_id", "step"], columns="tag", values="value", aggfunc="last"
            )
            .reset_index()
            .rename(columns={"step": "epoch"})
        )
        wide.columns.name = None
        epochs = wide if epochs.empty else epochs.merge(wide, on=["trial_id", "epoch"], how="outer")
    iterations = (
        pd.concat(iteration_frames, ignore_index=True)
        if iteration_frames
        else pd.DataFrame(columns=["trial_id", *ITERATION_COLUMNS])
    )
    return Results(
        root=root,
        campaign=campaign,
        factors=factors,
        trials=trials,
        epochs=epochs,
        iterations=iterations,
        warnings=notes,
    )
