"""The report's Confirmation section: predicted against measured at the recommended setting.

``trainbed confirm`` froze each response's prediction in ``confirmation.json``
(:mod:`trainbed.contract.confirmation`) before it ran the configuration m times. Here each
measured mean is set beside its prediction interval *for a mean of m runs*,
``mean ± t · sqrt(se_mean² + MSE / m)``, and the verdict is on the goal's responses: inside
every interval, the model holds there; outside any, the model is at fault, not the runs. It is
either inadequate (a missing term, curvature between the levels) or, in a fraction, the
interactions it aliased are active, and ``trainbed augment --foldover`` separates them.
:func:`verdict` is pure; :func:`confirmation_section` reads the trials' records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.analysis.models.cost import cost_spec, priced_trial
from trainbed.analysis.models.noise import NoisePolicy, has_records, noise_frame, noise_records
from trainbed.analysis.models.predictor import t_quantile
from trainbed.analysis.reporting import tables
from trainbed.contract.campaign import Campaign
from trainbed.contract.confirmation import ConfirmationBlock, FrozenPrediction, read_confirmation
from trainbed.contract.errors import RecordError
from trainbed.contract.goal import GoalSpec
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.records import Result, read_result
from trainbed.contract.responses import RESPONSE_FIELDS


@dataclass(frozen=True)
class Check:
    """One response: its prediction interval for the mean of ``runs`` runs, what they measured."""

    response: str
    unit: str
    predicted: float
    interval: tuple[float, float] | None
    measured: float | None
    runs: int

    @property
    def inside(self) -> bool | None:
        if self.interval is None or self.measured is None:
            return None
        return self.interval[0] <= self.measured <= self.interval[1]


def mean_interval(p: FrozenPrediction, runs: int) -> tuple[float, float] | None:
    """The prediction interval of the mean of ``runs`` new runs."""
    if p.se_mean is None or p.mse is None or runs < 1 or p.df < 1:
        return None
    half = t_quantile(p.level, p.df) * float(np.sqrt(p.se_mean**2 + p.mse / runs))
    return p.mean - half, p.mean + half


def checks(block: ConfirmationBlock, measured: dict[str, list[float]]) -> list[Check]:
    out = []
    for p in block.predictions:
        values = measured.get(p.response, [])
        out.append(
            Check(
                response=p.response,
                unit=p.unit,
                predicted=p.mean,
                interval=mean_interval(p, len(values)),
                measured=float(np.mean(values)) if values else None,
                runs=len(values),
            )
        )
    return out


def _means(found: list[Check]) -> str:
    """'the measured mean of time falls' or 'the measured means of time and accuracy fall'."""
    names = [c.response for c in found]
    if len(names) == 1:
        return f"the measured mean of {names[0]} falls"
    return f"the measured means of {', '.join(names[:-1])} and {names[-1]} fall"


def _its(found: list[Check]) -> str:
    return "its prediction interval" if len(found) == 1 else "their prediction intervals"


def verdict(
    block: ConfirmationBlock,
    found: list[Check],
    fraction: bool,
    disturbed: dict[str, str] | None = None,
) -> str:
    """One paragraph: confirmed, not confirmed (and what to do), or not decidable.
    ``disturbed`` maps the block's runs that the noise guard flagged to why."""
    try:
        judged = GoalSpec.model_validate(block.goal).responses
    except ValueError:
        judged = [c.response for c in found]
    decisive = [c for c in found if c.response in judged and c.inside is not None]
    if not decisive:
        return (
            "**No verdict**: no response the goal names has both a measured mean and a "
            "prediction interval (no run succeeded, or the model had no error df)."
        )
    missed = [c for c in decisive if not c.inside]
    if not missed:
        return (
            f"**Confirmed**: {_means(decisive)} inside {_its(decisive)}. "
            "The model predicts this configuration."
        )
    assumed = next((p.aliased for p in block.predictions if p.aliased), [])
    why = "the model is inadequate here (a term it lacks, or curvature between the levels)"
    if fraction:
        why += ", or interactions that the fraction aliased are active"
        if assumed:
            why += f" (the prediction assumed {'; '.join(assumed)})"
    follow = (
        " Separate the aliases with `trainbed augment DIR --foldover full` (or `--foldover "
        "FACTOR`), then analyse and confirm again."
        if fraction
        else " Add levels (a centre point) or runs, then analyse and confirm again."
    )
    if disturbed:
        return (
            f"**Not confirmed, and not decided**: {_means(missed)} outside "
            f"{_its(missed)}, but the noise guard flagged "
            f"{len(disturbed)} of the {len(block.trial_ids)} runs ("
            + "; ".join(f"{t}: {w}" for t, w in disturbed.items())
            + "): the machine, not the model, may have moved them. Run `trainbed confirm` "
            f"again on a quiet machine; if it misses again, {why}." + follow
        )
    return (
        f"**Not confirmed**: {_means(missed)} outside {_its(missed)}. "
        f"The runs are not at fault: {why}." + follow
    )


def measured_values(
    root: Path, block: ConfirmationBlock, campaign: Campaign
) -> tuple[dict[str, list[float]], list[str]]:
    """Each response's values over the block's succeeded runs, and the runs that failed."""
    layout = ResultsLayout(root)
    prices = cost_spec(campaign)
    values: dict[str, list[float]] = {}
    failed = []
    for trial_id in block.trial_ids:
        files = layout.trial(trial_id)
        try:
            result = read_result(files.root)
        except RecordError as err:
            failed.append(f"{trial_id} (unreadable: {err.field or err.problem})")
            continue
        if result is None:
            failed.append(f"{trial_id} (no result)")
            continue
        if result.status != "succeeded":
            failed.append(f"{trial_id} ({result.status})")
            continue
        for response, field in RESPONSE_FIELDS.items():
            value = getattr(result, field)
            if value is not None:
                values.setdefault(response, []).append(float(value))
        if prices is not None:
            priced = priced_trial(files.root, prices, result)
            if priced is not None:
                values.setdefault("cost", []).append(priced.total)
    return values, failed


def disturbed_runs(
    root: Path, trials: pd.DataFrame, block: ConfirmationBlock, records: Mapping[str, Result]
) -> dict[str, str]:
    """The block's runs the noise guard flags, judged beside the design's trials (each
    calibration against the median of its CPU limit's group), and why. ``records`` are the
    design's results as the loader read them; the block's own are read here."""
    ids = [t for t in block.trial_ids if t not in set(trials["trial_id"])]
    found = dict(records)
    statuses = []
    for trial_id in ids:
        try:
            result = read_result(ResultsLayout(root).trial(trial_id).root)
        except RecordError:
            result = None
        statuses.append("missing" if result is None else result.status)
        if result is not None:
            found[trial_id] = result
    both = pd.concat(
        [trials[["trial_id", "status"]], pd.DataFrame({"trial_id": ids, "status": statuses})],
        ignore_index=True,
    )
    frame = noise_frame(both, noise_records(found, list(both["trial_id"])), NoisePolicy())
    if not has_records(frame):
        return {}
    mine = frame[frame["trial_id"].isin(ids) & frame["flagged"]]
    return dict(zip(mine["trial_id"], mine["why"], strict=True))


def confirmation_section(
    root: Path,
    campaign: Campaign,
    out: Path,
    trials: pd.DataFrame,
    records: Mapping[str, Result],
) -> str:
    """The section's Markdown ('' when nothing was confirmed); writes confirmation.csv.
    ``trials`` are the design's (the noise guard judges the block's runs beside them)."""
    record = read_confirmation(ResultsLayout(Path(root)).confirmation_file)
    if record is None or not record.blocks:
        return ""
    fraction = campaign.spec.design.type != "full"
    text = "\n## Confirmation\n\n"
    rows = []
    for block in record.blocks:
        measured, failed = measured_values(Path(root), block, campaign)
        found = checks(block, measured)
        where = "a design point" if block.design_point else "not a design point"
        levels = ", ".join(f"{k}={v}" for k, v in block.levels.items())
        text += (
            f"### Confirmation {block.block}: {levels}\n\n"
            f"Goal `{block.goal}`; {where}; {len(block.trial_ids)} run(s) "
            f"({', '.join(block.trial_ids)}), predicted by the model of {block.model_runs} runs "
            f"before they ran. Intervals are {block.predictions[0].level:.0%} prediction "
            "intervals for the mean of the runs that succeeded.\n\n"
        )
        if failed:
            text += f"- did not succeed: {', '.join(failed)}\n\n"
        frame = pd.DataFrame(
            [
                {
                    "confirmation": block.block,
                    "response": c.response,
                    "unit": c.unit,
                    "predicted": c.predicted,
                    "PI of the mean": ""
                    if c.interval is None
                    else (f"[{tables.number(c.interval[0])}, {tables.number(c.interval[1])}]"),
                    "measured mean": c.measured,
                    "runs": c.runs,
                    "inside": {True: "yes", False: "**no**", None: ""}[c.inside],
                }
                for c in found
            ]
        )
        rows.append(frame)
        text += tables.markdown(frame.drop(columns=["confirmation"])) + "\n"
        disturbed = disturbed_runs(Path(root), trials, block, records)
        text += verdict(block, found, fraction, disturbed) + "\n\n"
    tables.write(out, "confirmation", pd.concat(rows, ignore_index=True))
    return text


def last_goal(root: Path) -> GoalSpec | None:
    """The goal the last ``trainbed confirm`` used, or None."""
    record = read_confirmation(ResultsLayout(Path(root)).confirmation_file)
    if record is None or not record.blocks:
        return None
    return GoalSpec.model_validate(record.blocks[-1].goal)
