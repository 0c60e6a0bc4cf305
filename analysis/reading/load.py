"""Loading a results directory into pandas frames: trials, epochs and iterations.

Every record is read through :mod:`trainbed.contract`'s models, and only through them:
``campaign.yaml`` as a :class:`~trainbed.contract.campaign.Campaign`, each ``result.json`` as a
:class:`~trainbed.contract.records.Result` (strictly: a field of the wrong type is named, never
coerced), ``trial.json`` and ``timestamps.jsonl`` by the contract's readers; design.csv,
``iterations/rank-*.csv`` and the ``tb/`` events by the columns and tags the contract names. It
never talks to a cluster.

A missing trial stays in the trials frame with its status, so nothing is dropped silently. A
record that does not validate is one line naming the trial, the file, the field and what was
wrong (:class:`Unreadable`): the trial is listed under "Trials that could not be read" and the
others are analysed. Only when no trial's record can be read is it an error (exit 2).
"""

from __future__ import annotations

import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pandas as pd
import yaml
from pydantic import ValidationError

from trainbed.analysis.models.cost import COST, trial_costs
from trainbed.analysis.reading.tbevents import read_campaign_scalars, read_trial_scalars
from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import RecordError, ResultsError, record_problem
from trainbed.contract.layout import (
    BLOCK_COLUMN,
    CAMPAIGN_FILE,
    DESIGN_COLUMNS,
    DESIGN_FILE,
    RESULT_FILE,
    ResultsLayout,
    coded_column,
)
from trainbed.contract.records import ITERATION_BASE_COLUMNS, ITERATION_COLUMNS, Result, read_result
from trainbed.contract.responses import RESPONSE_FIELDS, RESPONSE_NAMES

_SCALARS = (str, int, float, bool, type(None))
#: The trials frame's status of a trial whose result.json exists but does not validate (the
#: record's own statuses are :data:`trainbed.contract.records.STATUSES`; "missing" has none).
UNREADABLE = "unreadable"


def _scalar(annotation: Any) -> bool:
    if get_origin(annotation) is Literal:
        return True
    if get_origin(annotation) in (Union, types.UnionType):
        return all(_scalar(arg) for arg in get_args(annotation))
    return annotation in _SCALARS


#: The trials frame's columns from ``result.json``: the model's scalar fields (its lists and
#: objects are read elsewhere: epochs into the epochs frame, the noise guard's records, ...).
RESULT_FIELDS: tuple[str, ...] = tuple(
    name
    for name, info in Result.model_fields.items()
    if _scalar(info.annotation) and name not in ("schema_", "campaign", "trial_id")
)


@dataclass(frozen=True)
class Unreadable:
    """A trial whose record exists but does not validate."""

    trial_id: str
    file: str
    field: str
    problem: str

    def line(self) -> str:
        return f"trial {self.trial_id}: {self.file}: {record_problem(self.field, self.problem)}"


@dataclass
class Results:
    """A campaign's results as frames, plus the campaign spec and the factor table."""

    root: Path
    campaign: Campaign
    factors: list[dict[str, Any]]
    trials: pd.DataFrame
    epochs: pd.DataFrame
    iterations: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    #: Each trial's ``result.json`` as read (trials without a readable one are absent), so no
    #: section reads a record twice.
    records: dict[str, Result] = field(default_factory=dict)
    #: The trials whose record did not validate, one line each.
    unreadable: list[Unreadable] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.campaign.metadata.name

    @property
    def factor_names(self) -> list[str]:
        return [f["name"] for f in self.factors]

    @property
    def responses(self) -> list[str]:
        return list(self.campaign.spec.responses)


def _known_responses(spec_file: Path, data: dict[str, Any], notes: list[str]) -> None:
    """Leave out (and name) responses this version does not know, so a campaign written by a
    newer trainbed, or edited by hand, still has its other responses analysed."""
    spec = data.get("spec")
    if not isinstance(spec, dict):
        return
    for key in ("responses", "tradeoff"):
        listed = spec.get(key)
        if not isinstance(listed, list):
            continue
        for i, name in enumerate(listed):
            if name not in RESPONSE_NAMES:
                notes.append(
                    f"{spec_file}: field spec.{key}[{i}]: {name!r} is not a response "
                    f"({', '.join(RESPONSE_NAMES)}); left out"
                )
        kept = [name for name in listed if name in RESPONSE_NAMES]
        # too few left: no trade-off, or the default responses
        if len(kept) < (2 if key == "tradeoff" else 1):
            spec.pop(key)
        else:
            spec[key] = kept


def read_campaign(spec_file: Path, notes: list[str]) -> Campaign:
    """``campaign.yaml`` through the contract's model; a :class:`ResultsError` naming the file
    and the field when it is not a campaign."""
    try:
        data = yaml.safe_load(spec_file.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ResultsError(f"{spec_file}: unreadable ({_one_line(err)})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{spec_file}: not a campaign (expected a mapping)")
    _known_responses(spec_file, data, notes)
    try:
        return Campaign.model_validate(data)
    except ValidationError as err:
        raise ResultsError(str(RecordError.from_validation(str(spec_file), err))) from None


def _read_campaign(
    root: Path, notes: list[str]
) -> tuple[Campaign, list[dict[str, Any]], pd.DataFrame]:
    """campaign.yaml and design.csv, the two files a results directory cannot do without; a
    :class:`ResultsError` naming the file (and the column) when either is unusable."""
    layout = ResultsLayout(root)
    spec_file, design_file = layout.campaign_file, layout.design_file
    if not spec_file.is_file() or not design_file.is_file():
        raise ResultsError(
            f"{root}: not a results directory (it needs {CAMPAIGN_FILE} and {DESIGN_FILE}; "
            "pass DIR/<campaign>)"
        )
    campaign = read_campaign(spec_file, notes)
    factors = [f.model_dump(mode="json") for f in campaign.spec.factors]
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


def _result_row(trial_id: str, result: Result) -> dict[str, Any]:
    row: dict[str, Any] = {"trial_id": trial_id}
    for name in RESULT_FIELDS:
        row[name] = getattr(result, name)
    mode = result.enforcement.get("mode")
    row["enforcement"] = mode if isinstance(mode, str) else None
    return row


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def load(directory: str | Path, *, tb_reader: str = "fast") -> Results:
    """Load a campaign's results directory (``DIR/<campaign>``).

    ``tb_reader`` is ``"fast"`` (trainbed's own event reader) or ``"tbparse"``. Damaged files
    are warnings (also kept in ``Results.warnings`` for the report), never exceptions.
    """
    root = Path(directory)
    notes: list[str] = []
    campaign, factors, design = _read_campaign(root, notes)
    for note in notes:
        warnings.warn(note, stacklevel=2)
    layout = ResultsLayout(root)
    records: dict[str, Result] = {}
    unreadable: list[Unreadable] = []
    rows = []
    epoch_rows = []
    iteration_frames = []
    scalar_frames = []
    for trial_id in design["trial_id"]:
        files = layout.trial(trial_id)
        try:
            result = read_result(files.root)
        except RecordError as err:
            bad = Unreadable(trial_id, RESULT_FILE, err.field, err.problem)
            unreadable.append(bad)
            warnings.warn(bad.line(), stacklevel=2)
            rows.append({"trial_id": trial_id, "status": UNREADABLE, "reason": bad.line()})
            continue
        if result is None:
            rows.append({"trial_id": trial_id, "status": "missing", "reason": "no result.json"})
        else:
            records[trial_id] = result
            rows.append(_result_row(trial_id, result))
            for epoch in result.epochs:
                epoch_rows.append({"trial_id": trial_id, **epoch.model_dump(exclude_unset=True)})
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
    if unreadable and not records:
        raise ResultsError(
            f"{root}: no trial's record could be read ({len(unreadable)} unreadable; the first: "
            f"{unreadable[0].line()})"
        )
    skipped = {bad.trial_id for bad in unreadable}
    trial_dirs = {
        trial_id: layout.trial(trial_id).root
        for trial_id in design["trial_id"]
        if trial_id not in skipped
    }
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
    trials[COST] = trial_costs(root, campaign, trials["trial_id"], records)  # from spec.cost
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
        records=records,
        unreadable=unreadable,
    )
