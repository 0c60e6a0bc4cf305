"""The best configuration for a goal (:mod:`trainbed.contract.goal`), from the fitted models.

Every combination of the levels run is a candidate: the design's own points, where the runs
measured it, and the combinations a fraction left out, where only the model speaks (and its
prediction rests on the aliases, which it names). For each, every response the goal names is
predicted (:mod:`~trainbed.analysis.models.predict`). A candidate is feasible when each constraint
holds at the predicted mean; each also gets the probability that one new run meets all the
constraints, from the prediction intervals. Feasible candidates rank by the objective's
predicted mean, or by the desirability (the weighted geometric mean of each response's score
at its predicted mean).

How sure the choice is: the probability that the runner-up is in fact better, P(μ₂ better than
μ₁), from the model's covariance of the two means (they share the coefficients). For a
desirability it is estimated by drawing the coefficients from their multivariate t (a fixed
seed, so a report is reproducible). Pure but :func:`recommend`, which reads a directory.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainbed.analysis.models.predict import (
    LEVEL,
    Prediction,
    Setting,
    coded_point,
    predict_response,
)
from trainbed.analysis.models.predictor import NotPredictable, Predictor, t_cdf, t_quantile
from trainbed.contract.campaign import Campaign
from trainbed.contract.goal import Constraint, GoalSpec

#: More combinations than this are not enumerated (the design would be far larger than a
#: campaign trainbed runs); the report says so.
MAX_CANDIDATES = 4096
#: Draws of the coefficients for a desirability's runner-up probability.
DRAWS = 4000


@dataclass(frozen=True)
class Candidate:
    """One combination of levels with its predictions and its standing under the goal."""

    levels: dict[str, Any]
    point: dict[str, Setting]
    run: bool
    predictions: dict[str, Prediction]
    feasible: bool
    #: probability that one new run here meets every constraint (None without intervals)
    p_meets: float | None
    #: higher is better: -mean (minimise), mean (maximise) or the desirability
    score: float

    def label(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.levels.items())


@dataclass(frozen=True)
class Recommendation:
    goal: GoalSpec
    level: float
    #: every candidate, feasible ones first, best first
    candidates: list[Candidate]
    #: the probability that the runner-up is in fact better than the best
    p_runner_up_better: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def feasible(self) -> list[Candidate]:
        return [c for c in self.candidates if c.feasible]

    @property
    def best(self) -> Candidate | None:
        return self.feasible[0] if self.feasible else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.feasible[1] if len(self.feasible) > 1 else None

    @property
    def best_run(self) -> Candidate | None:
        """The best of the design points the campaign ran."""
        return next((c for c in self.feasible if c.run), None)


def p_meets(prediction: Prediction, constraint: Constraint) -> float | None:
    """P(one new run meets ``constraint``), from the predictive t distribution."""
    if prediction.pi is None:
        return None
    half = (prediction.pi[1] - prediction.pi[0]) / 2
    se = half / t_quantile(prediction.level, prediction.df)
    if se <= 0:
        return float(constraint.holds(prediction.mean))
    below = t_cdf((constraint.bound - prediction.mean) / se, prediction.df)
    return below if constraint.op in ("<=", "<") else 1.0 - below


def _score(goal: GoalSpec, means: dict[str, float]) -> float:
    if goal.minimize:
        return -means[goal.minimize]
    if goal.maximize:
        return means[goal.maximize]
    assert goal.desirability
    total = sum(d.weight for d in goal.desirability)
    logs = 0.0
    for d in goal.desirability:
        s = d.score(means[d.response])
        if s <= 0:
            return 0.0
        logs += d.weight * np.log(s)
    return float(np.exp(logs / total))


def _points(factors: list[dict[str, Any]]) -> list[dict[str, Setting]]:
    choices = []
    for f in factors:
        levels = f["levels"]
        coded = [-1.0, 1.0] if len(levels) == 2 else [float(i) for i in range(len(levels))]
        choices.append(
            [Setting(f["name"], lv, c, "level") for lv, c in zip(levels, coded, strict=True)]
        )
    return [{s.factor: s for s in combo} for combo in itertools.product(*choices)]


def rank(
    goal: GoalSpec,
    models: dict[str, Predictor],
    trials: pd.DataFrame,
    factors: list[dict[str, Any]],
    *,
    level: float = LEVEL,
    units: dict[str, str] | None = None,
) -> Recommendation:
    """Rank every combination of the levels under ``goal`` with the fitted ``models`` (one per
    response the goal names)."""
    points = _points(factors)
    notes = []
    if len(points) > MAX_CANDIDATES:
        notes.append(f"{len(points)} combinations: only the first {MAX_CANDIDATES} are ranked")
        points = points[:MAX_CANDIDATES]
    units = units or {}
    candidates = []
    for point in points:
        predictions = {
            r: predict_response(m, point, trials, level=level, unit_text=units.get(r))
            for r, m in models.items()
        }
        means = {r: p.mean for r, p in predictions.items()}
        chances = [p_meets(predictions[c.response], c) for c in goal.subject_to]
        candidates.append(
            Candidate(
                levels={n: s.value for n, s in point.items()},
                point=point,
                run=next(iter(models.values())).is_run(coded_point(point)),
                predictions=predictions,
                feasible=all(c.holds(means[c.response]) for c in goal.subject_to),
                p_meets=None if None in chances else float(np.prod(chances or [1.0])),
                score=_score(goal, means),
            )
        )
    candidates.sort(key=lambda c: (not c.feasible, -c.score))
    feasible = [c for c in candidates if c.feasible]
    if not feasible:
        notes.append(
            "no combination of the levels run meets the constraints at its predicted mean: "
            "relax a constraint, or run levels further out"
        )
    p = None
    if len(feasible) > 1:
        p = _p_better(goal, models, feasible[0], feasible[1])
    return Recommendation(goal, level, candidates, p, notes)


def _p_better(
    goal: GoalSpec, models: dict[str, Predictor], best: Candidate, runner: Candidate
) -> float | None:
    """P(the runner-up's true objective beats the best's)."""
    a, b = coded_point(runner.point), coded_point(best.point)
    objective = goal.minimize or goal.maximize
    if objective:
        d = models[objective].difference(a, b)
        if d.se_mean is None:
            return None
        if d.se_mean == 0:
            return 0.5 if d.mean == 0 else float(d.mean < 0) if goal.minimize else float(d.mean > 0)
        below = t_cdf(-d.mean / d.se_mean, d.df)  # P(μ_runner - μ_best < 0)
        return below if goal.minimize else 1.0 - below
    rng = np.random.default_rng(0)
    wins = np.zeros(DRAWS, dtype=bool)
    draws: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for response, model in models.items():
        if model.mse is None:
            return None
        cov = model.mse * model.xtx_inv
        z = rng.multivariate_normal(np.zeros(len(model.beta)), cov, size=DRAWS, method="svd")
        scale = np.sqrt(model.df_resid / rng.chisquare(model.df_resid, size=DRAWS))
        beta = model.beta + z * scale[:, None]
        draws[response] = (beta @ model.row(a), beta @ model.row(b))
    for i in range(DRAWS):
        at_a = {r: float(v[0][i]) for r, v in draws.items()}
        at_b = {r: float(v[1][i]) for r, v in draws.items()}
        wins[i] = _score(goal, at_a) > _score(goal, at_b)
    return float(wins.mean())


def recommend(
    directory: str | Path,
    goal: GoalSpec | str | None = None,
    *,
    level: float = LEVEL,
) -> Recommendation:
    """The recommendation for ``goal`` (a GoalSpec or a goal line; default the campaign's
    ``spec.goal``) over a results directory. ValueError when there is no goal or it cannot be
    modelled."""
    from trainbed.analysis.models.cost import cost_spec
    from trainbed.analysis.reading.load import load
    from trainbed.analysis.reporting.design_notes import is_screening

    results = load(directory)
    chosen = resolve_goal(goal, results.campaign)
    if chosen is None:
        raise ValueError("no goal: give one (--goal) or set spec.goal in the campaign file")
    prices = cost_spec(results.campaign)
    units = {"cost": prices.currency} if prices else {}
    return rank(
        chosen,
        fit_models(chosen, results.trials, results.factors, is_screening(results.campaign)),
        results.trials,
        results.factors,
        level=level,
        units=units,
    )


def resolve_goal(goal: GoalSpec | str | None, campaign: Campaign) -> GoalSpec | None:
    """The goal given, else the campaign's ``spec.goal``, else None."""
    if isinstance(goal, GoalSpec):
        return goal
    if isinstance(goal, str):
        return GoalSpec.model_validate(goal)
    return campaign.spec.goal


def fit_models(
    goal: GoalSpec, trials: pd.DataFrame, factors: list[dict[str, Any]], screening: bool
) -> dict[str, Predictor]:
    """One model per response the goal names; NotPredictable names the one that fails."""
    from trainbed.analysis.models.predict import censored_reason

    models = {}
    names = [f["name"] for f in factors]
    for response in goal.responses:
        if response == "cost" and ("cost" not in trials or trials["cost"].isna().all()):
            raise NotPredictable(
                f"goal {goal.text()!r}: cost needs prices: set spec.cost in the campaign file"
            )
        why = censored_reason(trials, response, names)
        if why:
            raise NotPredictable(f"goal {goal.text()!r}: {response}: {why}")
        try:
            models[response] = Predictor.fit(trials, factors, response, main_effects_only=screening)
        except NotPredictable as err:
            raise NotPredictable(f"goal {goal.text()!r}: {err}") from None
    return models
