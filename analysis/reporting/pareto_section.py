"""The report's Trade-offs section: the Pareto set of configurations over two or three responses.

Which responses: ``spec.tradeoff`` when the campaign names them, otherwise the first measured
time response (time to accuracy, train time, wall time) against the first measured energy
response (energy to accuracy, training energy, trial energy). Each design point is estimated
from its runs and from the fitted model (``tradeoff``), and each view has its own Pareto set
(``pareto``): where they differ, the model is smoothing over replicates the runs disagree on.
The numbers go into ``pareto.csv``, the figure into ``figures/tradeoff.png`` and ``.svg``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.analysis.models.fit_runs import is_censored_response, runs_note
from trainbed.analysis.models.pareto import OPTIMAL, Objective, pareto_status
from trainbed.analysis.models.tradeoff import design_points, model_estimates, run_estimates
from trainbed.analysis.plots.tradeoff_plot import tradeoff_figure
from trainbed.analysis.reading.load import Results
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.design_notes import is_screening
from trainbed.analysis.reporting.response_section import censoring
from trainbed.contract.campaign import Campaign

#: The default trade-off: the first measured of each, time against energy.
TIME_LIKE = ("time_to_accuracy", "train_time", "time")
ENERGY_LIKE = ("energy_to_accuracy", "train_energy", "energy", "energy_per_sample")
PARETO_FILE = "pareto"


def _measured(trials: pd.DataFrame, response: str) -> bool:
    ok = trials["status"] == "succeeded"
    return response in trials and bool(trials.loc[ok, response].notna().any())


def chosen_responses(campaign: Campaign, trials: pd.DataFrame) -> tuple[list[str], str]:
    """The trade-off's responses and how they were chosen (for the report's text)."""
    asked = campaign.spec.tradeoff
    if asked:
        return list(asked), "named by `spec.tradeoff`"
    time = next((r for r in TIME_LIKE if _measured(trials, r)), None)
    energy = next((r for r in ENERGY_LIKE if _measured(trials, r)), None)
    if time and energy:
        return [time, energy], (
            "by default the first measured time response against the first measured energy "
            "response; name others under `spec.tradeoff`"
        )
    return [], ""


def _number(value: float) -> str:
    """Whole units from 1000 up (12413, not 1.241e+04), 4 significant digits below."""
    return f"{value:.0f}" if abs(value) >= 1000 else tables.number(float(value))


def _cell(row: pd.Series) -> str:
    if np.isnan(row["mean"]):
        return ""
    interval = "" if np.isnan(row["low"]) else f" [{_number(row['low'])}, {_number(row['high'])}]"
    return _number(row["mean"]) + interval


def _set_text(status: pd.Series, levels: pd.Series) -> str:
    best = status.index[status == OPTIMAL]
    return ", ".join(f"{p} ({levels[p]})" for p in best) if len(best) else "_(empty)_"


def tradeoff_section(results: Results, out: Path) -> str:
    """The section's Markdown; writes ``pareto.csv`` and the figure under ``out``."""
    trials, names = results.trials, results.factor_names
    wanted, how = chosen_responses(results.campaign, trials)
    text = "\n## Trade-offs\n\n"
    if not wanted:
        return text + (
            "No trade-off drawn: it needs a time and an energy response that were measured, or "
            "two or three responses named under `spec.tradeoff`.\n"
        )
    missing = [r for r in wanted if not _measured(trials, r)]
    responses = [r for r in wanted if r not in missing]
    for response in missing:
        text += (
            f"- `{response}` was not measured by any succeeded run: left out of the trade-off.\n"
        )
    if len(responses) < 2:
        return text + "\nNo trade-off drawn: fewer than two of its responses were measured.\n"
    objectives = [Objective.of(r) for r in responses]
    text += (
        "Responses ("
        + how
        + "): "
        + ", ".join(f"`{o.response}` ({o.word})" for o in objectives)
        + ". A configuration is in the Pareto set when no other is at least as good on every "
        "response and better on one. Each design point is estimated from its runs (mean, 95% "
        "t interval) and from the fitted model (its prediction, 95% interval of the mean). A "
        "point with a run that never reached the target is censored and not compared (it is "
        "no way to reach it); a point with a response unmeasured is left out.\n\n"
    )
    screening = is_screening(results.campaign)
    runs, model = {}, {}
    for response in responses:
        runs[response] = run_estimates(trials, names, response)
        fittable = not is_censored_response(response) or censoring(trials, response, names)[1]
        model[response] = (
            model_estimates(trials, results.factors, response, main_effects_only=screening)
            if fittable
            else runs[response][["mean", "low", "high"]] * np.nan
        )
        note = "" if fittable else " No model: too many runs are censored (see its section)."
        text += f"- `{response}`: {runs_note(trials, response)}{note}\n"
    points = design_points(trials, names)
    censored = pd.DataFrame({r: runs[r]["censored"] for r in responses})
    by_runs = pareto_status(
        pd.DataFrame({r: runs[r]["mean"] for r in responses}), objectives, censored
    )
    by_model = pareto_status(
        pd.DataFrame({r: model[r]["mean"] for r in responses}), objectives, censored
    )
    frame = points[names].copy()
    for r in responses:
        for column in ("mean", "low", "high", "n", "censored_runs"):
            frame[f"{r}_runs_{column}"] = runs[r][column]
        for column in ("mean", "low", "high"):
            frame[f"{r}_model_{column}"] = model[r][column]
    frame["status_runs"] = by_runs["status"]
    frame["dominated_by_runs"] = by_runs["dominated_by"]
    frame["status_model"] = by_model["status"]
    frame["dominated_by_model"] = by_model["dominated_by"]
    tables.write(out, PARETO_FILE, frame.rename_axis("point").reset_index())

    rows = pd.DataFrame({"point": points.index, "levels": points["levels"]}, index=points.index)
    for r in responses:
        rows[f"{r}: runs"] = runs[r].apply(_cell, axis=1)
        rows[f"{r}: model"] = model[r].apply(_cell, axis=1)
        rows[f"{r}: n (censored)"] = [
            f"{n} ({c})" if c else f"{n}"
            for n, c in zip(runs[r]["n"], runs[r]["censored_runs"], strict=True)
        ]
    rows["runs"] = by_runs["status"]
    rows["model"] = by_model["status"]
    rows["dominated by (runs)"] = by_runs["dominated_by"]
    levels = points["levels"]
    text += (
        f"\n**Pareto set from the runs:** {_set_text(by_runs['status'], levels)}.\n\n"
        f"**Pareto set from the model:** {_set_text(by_model['status'], levels)}.\n\n"
        f"Per design point (levels: {' / '.join(names)}; units as in the responses table; "
        f"`{PARETO_FILE}.csv`):\n\n" + tables.markdown(rows.reset_index(drop=True))
    )
    title = "Trade-off: " + " vs ".join(responses) + " per design point"
    figure = tradeoff_figure(
        objectives, runs, model, by_runs["status"], levels, out / "figures", title, names
    )
    if figure:
        text += f"\n![trade-off](figures/{figure})\n"
    return text
