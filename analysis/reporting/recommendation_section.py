"""The report's Recommendation section: the goal, the best configuration with its intervals,
how sure the choice is, and the accuracy-per-second ("bang for the buck") ranking.

The goal is ``--goal`` when given, else the campaign's ``spec.goal``, else the one the last
``trainbed confirm`` used; without any the section says how to set one and keeps the ranking.
It writes ``recommendation.csv`` (every candidate), ``recommendation.json`` (the goal and the
choice, which ``trainbed confirm`` reads back), ``accuracy_per_second.csv`` (per trial) and
``accuracy_per_second_points.csv`` (per configuration, over its replicates).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainbed.analysis.models.cost import cost_spec
from trainbed.analysis.models.predict import Prediction
from trainbed.analysis.models.predictor import NotPredictable
from trainbed.analysis.models.recommend import Candidate, Recommendation, fit_models, rank
from trainbed.analysis.models.responses import accuracy_per_second
from trainbed.analysis.models.units import unit
from trainbed.analysis.reading.load import Results
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.design_notes import is_screening
from trainbed.contract.goal import GoalSpec
from trainbed.contract.layout import RECOMMENDATION_FILE

#: Candidates shown in the report's table (recommendation.csv has them all).
SHOWN = 8


def _units(results: Results) -> dict[str, str]:
    prices = cost_spec(results.campaign)
    return {"cost": prices.currency} if prices else {}


def _interval(pair: tuple[float, float] | None) -> str:
    return "" if pair is None else f"[{tables.number(pair[0])}, {tables.number(pair[1])}]"


def _said(p: Prediction) -> str:
    u = f" {p.unit}" if p.unit else ""
    text = f"{p.response} {tables.number(p.mean)}{u}"
    if p.ci is not None:
        text += f" (CI {_interval(p.ci)}, PI {_interval(p.pi)})"
    return text


def _where(c: Candidate, response: str) -> str:
    if not c.run:
        return "not run in the design: the model's prediction"
    p = c.predictions[response]
    u = f" {p.unit}" if p.unit else ""
    return (
        f"a design point: {p.measured_runs} run(s) measured {response} "
        f"{tables.number(p.measured_mean)}{u}"
    )


def candidates_frame(rec: Recommendation) -> pd.DataFrame:
    """Every candidate, ranked: its configuration, whether it was run, each prediction."""
    rows = []
    for i, c in enumerate(rec.candidates, start=1):
        row: dict[str, Any] = {"rank": i if c.feasible else None, **c.levels, "run": c.run}
        for name, p in c.predictions.items():
            u = f" ({p.unit})" if p.unit else ""
            row[f"{name}{u}"] = p.mean
            row[f"{name} PI"] = _interval(p.pi)
        row["P(meets constraints)"] = c.p_meets
        row["feasible"] = c.feasible
        row["score"] = c.score
        row["rests on aliases"] = "yes" if next(iter(c.predictions.values())).aliased else ""
        rows.append(row)
    return pd.DataFrame(rows)


def choice_json(rec: Recommendation, source: str) -> dict[str, Any]:
    """recommendation.json: the goal, where it came from, and the choice."""
    best, runner = rec.best, rec.runner_up
    return {
        "goal": rec.goal.text(),
        "source": source,
        "level": rec.level,
        "best": None if best is None else {"levels": best.levels, "run": best.run},
        "runner_up": None if runner is None else {"levels": runner.levels, "run": runner.run},
        "p_runner_up_better": rec.p_runner_up_better,
    }


def _recommendation_text(rec: Recommendation, source: str) -> str:
    goal = rec.goal
    objective = goal.minimize or goal.maximize or "desirability"
    text = (
        f"Goal: `{goal.text()}` ({source}). Every combination of the levels run is a "
        "candidate, ranked by the model the report fits: the design's points and the "
        f"combinations it left out. Intervals are {rec.level:.0%}: CI where the mean is, PI "
        "where one new run lands.\n\n"
    )
    best = rec.best
    for note in rec.notes:
        text += f"- {note}\n"
    if best is None:
        return text
    first = goal.responses[0]
    text += f"**Recommended: {best.label()}** ({_where(best, first)}).\n\n" + "".join(
        f"- predicted {_said(p)}\n" for p in best.predictions.values()
    )
    if goal.desirability:
        text += f"- desirability {best.score:.3f} (at the predicted means)\n"
    if goal.subject_to and best.p_meets is not None:
        text += (
            f"- probability that one new run meets "
            f"{' and '.join(c.text() for c in goal.subject_to)}: {best.p_meets:.1%}\n"
        )
    aliased = next(iter(best.predictions.values())).aliased
    if aliased:
        text += (
            "- this prediction rests on aliased terms: " + "; ".join(aliased) + ". Run "
            "`trainbed confirm` to check it before relying on it.\n"
        )
    best_run = rec.best_run
    if best_run is not None and best_run is not best:
        text += (
            f"- best among the design points run: {best_run.label()} "
            f"({_where(best_run, first)}; predicted {_said(best_run.predictions[first])})\n"
        )
    runner = rec.runner_up
    if runner is not None:
        p = rec.p_runner_up_better
        sure = "" if p is None else f"; the probability that it is in fact better: {p:.1%}"
        text += (
            f"- runner-up: {runner.label()} (predicted {_said(runner.predictions[first])}"
            f"{sure}, from the model's covariance of the two {objective} means)\n"
        )
    return text + f"\nNext: `trainbed confirm DIR --runs 3` runs {best.label()} again.\n"


def bang_for_the_buck(results: Results, out: Path) -> str:
    """The sync-period study's ranking: final accuracy per second of wall time, per
    configuration (over its replicates) and per trial (``accuracy_per_second.csv``)."""
    trials = results.trials[results.trials["status"] == "succeeded"]
    names = results.factor_names
    ranking = accuracy_per_second(trials)
    tables.write(out, "accuracy_per_second", ranking)
    per_trial = trials[["trial_id", *names]].merge(ranking, on="trial_id")
    if per_trial.empty:
        return "\n### Accuracy per second\n\n_(no succeeded run with accuracy and time)_\n"
    points = (
        per_trial.groupby(names, sort=False)
        .agg(
            runs=("trial_id", "size"),
            accuracy=("accuracy", "mean"),
            time=("time", "mean"),
            accuracy_per_s=("accuracy_per_s", "mean"),
        )
        .reset_index()
        .sort_values("accuracy_per_s", ascending=False)
    )
    points["rank"] = np.arange(1, len(points) + 1)
    tables.write(out, "accuracy_per_second_points", points)
    shown = points.rename(
        columns={
            "accuracy": f"accuracy ({unit('accuracy')})",
            "time": f"time ({unit('time')})",
            "accuracy_per_s": "accuracy per s (fraction/s)",
        }
    )
    return (
        '\n### Accuracy per second ("bang for the buck")\n\n'
        "Final accuracy per second of wall time, each configuration's mean over its runs, "
        "best first (`accuracy_per_second_points.csv`; per trial: `accuracy_per_second.csv`):"
        "\n\n" + tables.markdown(shown)
    )


def recommendation_section(
    results: Results, goal: GoalSpec | None, source: str, out: Path
) -> tuple[str, Recommendation | None]:
    """The section's Markdown and the recommendation (None without a goal or a model)."""
    text = "\n## Recommendation\n\n"
    rec = None
    if goal is None:
        text += (
            "No goal: set `spec.goal` in the campaign file, or pass one to analyze, e.g. "
            '`trainbed analyze DIR --goal "min time s.t. accuracy >= 0.9"`.\n'
        )
    else:
        try:
            models = fit_models(
                goal, results.trials, results.factors, is_screening(results.campaign)
            )
        except NotPredictable as err:
            text += f"No recommendation: {err}.\n"
        else:
            rec = rank(goal, models, results.trials, results.factors, units=_units(results))
            text += _recommendation_text(rec, source)
            frame = candidates_frame(rec)
            tables.write(out, "recommendation", frame)
            shown = frame.drop(columns=["score"]).head(SHOWN)
            text += (
                f"\nThe candidates, best first (the first {min(SHOWN, len(frame))} of "
                f"{len(frame)}; `recommendation.csv`):\n\n" + tables.markdown(shown)
            )
            aliased = next(
                (p.aliased for c in rec.candidates for p in c.predictions.values() if p.aliased),
                [],
            )
            if aliased:
                text += (
                    "\nA combination the design did not run rests on the aliases: its "
                    "prediction assumes " + "; ".join(aliased) + ".\n"
                )
            (out / RECOMMENDATION_FILE).write_text(
                json.dumps(choice_json(rec, source), indent=2, default=str) + "\n"
            )
    return text + bang_for_the_buck(results, out), rec


def decision_sections(results: Results, goal: GoalSpec | None, out: Path) -> str:
    """The Recommendation and Confirmation sections. The goal is ``goal`` (``--goal``), else
    ``spec.goal``, else the goal of the last ``trainbed confirm``."""
    from trainbed.analysis.reporting.confirmation_section import confirmation_section, last_goal

    source = "from --goal"
    if goal is None and results.campaign.spec.goal is not None:
        goal, source = results.campaign.spec.goal, "spec.goal"
    if goal is None:
        goal, source = last_goal(results.root), "the goal of the last trainbed confirm"
    out.mkdir(parents=True, exist_ok=True)
    text, _ = recommendation_section(results, goal, source, out)
    return text + confirmation_section(
        results.root, results.campaign, out, results.trials, results.records
    )
