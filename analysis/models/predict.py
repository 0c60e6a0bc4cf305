"""``trainbed predict DIR --set cpu=1 --set batch_size=64``: each response at a configuration.

For every response the report fits, the model
(:class:`~trainbed.analysis.models.predictor.Predictor`)
gives the predicted mean with its confidence interval (where the mean is) and its prediction
interval (where one new run will land). The configuration is resolved against the levels run:

- a level that was run is used as it is (``64``, ``1``, ``1000m`` and ``1`` are the same CPU);
- for a two-level numeric factor, a value between the two levels is coded linearly between -1
  and +1 and labelled interpolation (the model assumes a straight line between the levels);
- a factor not set is averaged over its levels, and says so;
- anything else, a value outside the levels or an unknown factor, is refused in one line
  (:class:`~trainbed.contract.errors.UserError`, exit 2): the model says nothing out there.

At a point the design did not run, a fraction's prediction rests on its aliases, and each
prediction lists the aliased terms it assumes. Pure but :func:`predict`, which reads ``DIR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainbed.analysis.models.predictor import Coded, NotPredictable, Predictor, t_quantile
from trainbed.analysis.models.units import unit
from trainbed.contract.errors import UserError
from trainbed.contract.quantity import parse_quantity
from trainbed.contract.responses import RESPONSES

LEVEL = 0.95


@dataclass(frozen=True)
class Setting:
    """A factor's value at the point: how it was resolved, and its code."""

    factor: str
    value: Any
    coded: float | None
    how: str  # "level" | "interpolated" | "averaged"


@dataclass(frozen=True)
class Prediction:
    """One response at one point. Intervals are None without error degrees of freedom."""

    response: str
    unit: str
    mean: float
    ci: tuple[float, float] | None
    pi: tuple[float, float] | None
    level: float
    df: int
    #: the aliased terms the prediction assumes (empty at a design point)
    aliased: list[str] = field(default_factory=list)
    #: the runs at this point and their mean (a design point), else 0 and None
    measured_runs: int = 0
    measured_mean: float | None = None


def number(value: Any) -> float | None:
    """A level as a number (``64``, ``0.1``, ``500m``, ``1.5Gi``), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(parse_quantity(str(value)))
    except ValueError:
        return None


def resolve(factors: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Setting]:
    """Each factor's setting at the point; a UserError in one line for what cannot be
    predicted (an unknown factor, a value outside the levels run)."""
    names = [f["name"] for f in factors]
    unknown = [name for name in settings if name not in names]
    if unknown:
        raise UserError(f"--set {unknown[0]}: no such factor (the factors are {', '.join(names)})")
    out = {}
    for factor in factors:
        name, levels = factor["name"], factor["levels"]
        if name not in settings:
            out[name] = Setting(name, None, None, "averaged")
            continue
        value = settings[name]
        out[name] = _setting(name, levels, value)
    return out


def _setting(name: str, levels: list[Any], value: Any) -> Setting:
    texts = [str(level) for level in levels]
    given = number(value)
    numbers = [number(level) for level in levels]
    for index, level in enumerate(levels):
        same = str(value) == texts[index] or (
            given is not None and numbers[index] is not None and given == numbers[index]
        )
        if same:
            code = float(2 * index - 1) if len(levels) == 2 else float(index)
            return Setting(name, level, code, "level")
    if len(levels) == 2 and given is not None and None not in numbers:
        low, high = numbers
        assert low is not None and high is not None
        if min(low, high) < given < max(low, high):
            return Setting(name, value, -1.0 + 2.0 * (given - low) / (high - low), "interpolated")
    within = (
        f"between {texts[0]} and {texts[1]}"
        if len(levels) == 2 and None not in numbers
        else "one of " + ", ".join(texts)
    )
    raise UserError(
        f"--set {name}={value}: outside the levels run ({within}); trainbed predicts only "
        "where the campaign ran, never by extrapolation"
    )


def coded_point(point: dict[str, Setting]) -> Coded:
    return {name: s.coded for name, s in point.items()}


def predict_response(
    predictor: Predictor,
    point: dict[str, Setting],
    trials: pd.DataFrame,
    *,
    level: float = LEVEL,
    unit_text: str | None = None,
) -> Prediction:
    """One response's prediction at a resolved point (``trials`` gives the measured runs)."""
    coded = coded_point(point)
    estimate = predictor.estimate(coded)
    ci = pi = None
    if estimate.se_mean is not None and estimate.se_pred is not None:
        t = t_quantile(level, estimate.df)
        ci = (estimate.mean - t * estimate.se_mean, estimate.mean + t * estimate.se_mean)
        pi = (estimate.mean - t * estimate.se_pred, estimate.mean + t * estimate.se_pred)
    runs, mean = 0, None
    if predictor.is_run(coded):
        mask = (trials["status"] == "succeeded") & trials[predictor.response].notna()
        for name, value in coded.items():
            mask &= trials[f"{name}_coded"] == value
        runs = int(mask.sum())
        mean = float(trials.loc[mask, predictor.response].mean()) if runs else None
    return Prediction(
        response=predictor.response,
        unit=unit_text or unit(predictor.response),
        mean=estimate.mean,
        ci=ci,
        pi=pi,
        level=level,
        df=estimate.df,
        aliased=predictor.aliased_at(coded),
        measured_runs=runs,
        measured_mean=mean,
    )


@dataclass(frozen=True)
class PredictionSet:
    """Every fitted response at one point, and how the point was resolved."""

    point: dict[str, Setting]
    predictions: list[Prediction]
    #: responses that could not be modelled, with the reason
    skipped: dict[str, str] = field(default_factory=dict)

    def notes(self) -> list[str]:
        out = []
        for s in self.point.values():
            if s.how == "interpolated":
                out.append(
                    f"interpolation: {s.factor} = {s.value} lies between the levels run; the "
                    "model assumes a straight line between them"
                )
            elif s.how == "averaged":
                out.append(f"{s.factor} not set: averaged over its levels")
        return out

    def frame(self) -> pd.DataFrame:
        rows = []
        for p in self.predictions:
            rows.append(
                {
                    "response": p.response,
                    "unit": p.unit,
                    "mean": p.mean,
                    "ci_low": p.ci[0] if p.ci else None,
                    "ci_high": p.ci[1] if p.ci else None,
                    "pi_low": p.pi[0] if p.pi else None,
                    "pi_high": p.pi[1] if p.pi else None,
                    "level": p.level,
                    "df": p.df,
                    "measured_runs": p.measured_runs,
                    "measured_mean": p.measured_mean,
                    "aliased": "; ".join(p.aliased),
                }
            )
        return pd.DataFrame(rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "point": {
                n: {"value": s.value, "coded": s.coded, "how": s.how} for n, s in self.point.items()
            },
            "notes": self.notes(),
            "predictions": self.frame().to_dict(orient="records"),
            "skipped": self.skipped,
        }


def censored_reason(trials: pd.DataFrame, response: str, names: list[str]) -> str | None:
    """Why a censored response (time to accuracy) is not modelled, as the report decides it;
    None when it is (nothing censored, or few enough runs and every design point kept)."""
    if response not in RESPONSES or not RESPONSES[response].censored:
        return None
    succeeded = trials["status"] == "succeeded"
    if not (succeeded & trials[response].isna()).any():
        return None
    from trainbed.analysis.reporting.response_section import censoring  # the report's rule, once

    text, fittable = censoring(trials, response, names)
    return None if fittable else text.strip()


def fitted_responses(trials: pd.DataFrame, listed: list[str]) -> list[str]:
    """The responses to model: those the campaign lists, then any other one measured."""
    wanted = [r for r in listed if r in RESPONSES]
    for response in RESPONSES:
        if response not in wanted and response in trials and trials[response].notna().any():
            wanted.append(response)
    return [r for r in wanted if r in trials and trials[r].notna().any()]


def predict(
    directory: str | Path,
    settings: dict[str, Any],
    *,
    responses: list[str] | None = None,
    level: float = LEVEL,
) -> PredictionSet:
    """Predict every response (or ``responses``) of a results directory at ``settings``
    (factor name -> value). A UserError for a point outside the levels run."""
    from trainbed.analysis.models.cost import cost_spec
    from trainbed.analysis.reading.load import load
    from trainbed.analysis.reporting.design_notes import is_screening

    results = load(directory)
    point = resolve(results.factors, settings)
    trials = results.trials
    chosen = responses or fitted_responses(trials, results.responses)
    unknown = [r for r in chosen if r not in RESPONSES]
    if unknown:
        raise UserError(f"--response {unknown[0]}: choose from {', '.join(RESPONSES)}")
    prices = cost_spec(results.campaign)
    out, skipped = [], {}
    for response in chosen:
        why = censored_reason(trials, response, results.factor_names)
        if why:
            skipped[response] = why
            continue
        try:
            model = Predictor.fit(
                trials,
                results.factors,
                response,
                main_effects_only=is_screening(results.campaign),
            )
        except NotPredictable as err:
            skipped[response] = str(err)
            continue
        currency = prices.currency if response == "cost" and prices else None
        out.append(predict_response(model, point, trials, level=level, unit_text=currency))
    return PredictionSet(point, out, skipped)
