"""The replicate advisor: how many replicates give the effects a confidence interval this narrow.

A replicate count should come from the observed variability, not from the budget (Hoefler &
Belli, SC'15). From a campaign's (or a pilot's) error variance s² with ν degrees of freedom, for
the design's distinct points repeated r times, each effect's interval half-width is

    h(r) = t(1 - α/2, df_r) · S_r · sqrt(c / r),   df_r = p·r - k,

where p is the number of distinct points, k the model's parameters, c the largest diagonal entry
of (X₁ᵀX₁)⁻¹ for one replicate X₁ of the points (1/p for a two-level orthogonal design) and S_r
the error standard deviation that the r-replicate campaign will estimate. Two answers:

- *expected*: the smallest r with h(r) ≤ target when S_r = s (a half-width this size on average);
- *assured* (recommended): the smallest r with P(h(r) ≤ target) ≥ ``assurance``, counting both the
  next campaign's S_r and the uncertainty of s itself: S_r² / s² follows F(df_r, ν), so the
  condition is t · s · sqrt(F_assurance(df_r, ν) · c / r) ≤ target.

With no error degrees of freedom (an unreplicated saturated two-level design), σ comes from
Lenth's pseudo standard error of the effects (σ = PSE·√N, ν = m/3), which the advice says.
A target is absolute (response units) or relative ("5%": of the response's mean). Pure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trainbed.analysis.models.anova import lenth_pse
from trainbed.analysis.models.design_matrix import build
from trainbed.contract.errors import UserError
from trainbed.contract.layout import coded_column

#: The advisor gives up above this many replicates (the target is then out of reach).
MAX_REPLICATES = 1000


@dataclass(frozen=True)
class Target:
    """A requested CI half-width: ``value`` in response units, or a fraction of the mean."""

    value: float
    relative: bool

    def __str__(self) -> str:
        return f"{self.value * 100:g}% of the mean" if self.relative else f"{self.value:g}"


def parse_target(text: str, flag: str = "--target-ci") -> Target:
    """``"5%"`` -> 5% of the mean; ``"0.5"`` -> 0.5 in the response's units."""
    raw = text.strip()
    try:
        if raw.endswith("%"):
            value, relative = float(raw[:-1]) / 100.0, True
        else:
            value, relative = float(raw), False
    except ValueError:
        raise UserError(f"{flag}: expected a number or a percentage, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise UserError(f"{flag}: must be positive, got {text!r}")
    return Target(value, relative)


@dataclass
class Advice:
    """The advisor's answer for one response (``--json`` prints these fields)."""

    response: str
    target: str
    target_half_width: float | None
    confidence: float
    assurance: float
    mean: float | None = None
    sigma: float | None = None
    sigma_df: float | None = None
    sigma_source: str = ""
    points: int | None = None
    parameters: int | None = None
    replicates_now: float | None = None
    half_width_now: float | None = None
    replicates_expected: int | None = None
    replicates_assured: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _half_width(
    sigma: float, c: float, points: int, params: int, r: int, confidence: float
) -> float:
    df = points * r - params
    return float(stats.t.ppf(0.5 + confidence / 2, df)) * sigma * math.sqrt(c / r)


def required_replicates(
    sigma: float,
    nu: float,
    c: float,
    points: int,
    params: int,
    target: float,
    *,
    confidence: float = 0.95,
    assurance: float = 0.90,
) -> tuple[int | None, int | None]:
    """(expected, assured) replicate counts for ``target`` half-width; None when even
    :data:`MAX_REPLICATES` does not reach it."""
    expected = assured = None
    for r in range(1, MAX_REPLICATES + 1):
        df = points * r - params
        if df < 1:
            continue
        base = _half_width(sigma, c, points, params, r, confidence)
        if expected is None and base <= target:
            expected = r
        if assured is None:
            factor = float(stats.f.ppf(assurance, df, nu)) if np.isfinite(nu) else 1.0
            if base * math.sqrt(factor) <= target:
                assured = r
        if expected is not None and assured is not None:
            break
    return expected, assured


def per_replicate_c(matrix: pd.DataFrame) -> tuple[float, int, int]:
    """(c, distinct points, parameters) of a model matrix: c is the largest diagonal entry of
    (X₁ᵀX₁)⁻¹ over the non-intercept columns, X₁ one row per distinct point."""
    x = matrix.to_numpy(dtype=float)
    unique = np.unique(x, axis=0)
    inverse = np.linalg.inv(unique.T @ unique)
    labels = list(matrix.columns)
    keep = [i for i, label in enumerate(labels) if label != "Intercept"]
    return float(max(inverse[i, i] for i in keep)), len(unique), x.shape[1]


def advise(
    trials: pd.DataFrame,
    factors: list[dict[str, Any]],
    response: str,
    target: Target,
    *,
    confidence: float = 0.95,
    assurance: float = 0.90,
) -> Advice:
    """The replicates ``response`` needs for ``target``, from the succeeded runs' error."""
    advice = Advice(
        response=response,
        target=str(target),
        target_half_width=None,
        confidence=confidence,
        assurance=assurance,
    )
    usable = trials[(trials["status"] == "succeeded") & trials[response].notna()]
    if len(usable) < 2 or usable[response].nunique() < 2:
        advice.note = "too few usable runs to estimate the error"
        return advice
    design = build(usable, factors)
    if len(design.matrix.columns) < 2:
        advice.note = "no effect is estimable from these runs"
        return advice
    y = usable[response].to_numpy(dtype=float)
    x = design.matrix.to_numpy(dtype=float)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ beta
    df = len(y) - x.shape[1]
    c, points, params = per_replicate_c(design.matrix)
    mean = float(np.mean(y))
    advice.mean, advice.points, advice.parameters = mean, points, params
    counts = usable.groupby([coded_column(f["name"]) for f in factors]).size()
    advice.replicates_now = float(counts.mean())
    if df >= 1:
        sigma, nu, source = math.sqrt(float(residuals @ residuals) / df), float(df), "error MS"
    elif all(len(f["levels"]) == 2 for f in factors) and len(beta) > 2:
        pse = lenth_pse(beta[1:])
        sigma, nu = pse * math.sqrt(len(y)), max((len(beta) - 1) / 3.0, 1.0)
        source = "Lenth's PSE (no error df: a rough estimate)"
    else:
        advice.note = "no error degrees of freedom to estimate the error from"
        return advice
    advice.sigma, advice.sigma_df, advice.sigma_source = sigma, nu, source
    covariance = np.linalg.inv(x.T @ x)
    widest = max(covariance[i, i] for i in range(1, x.shape[1]))
    advice.half_width_now = float(stats.t.ppf(0.5 + confidence / 2, nu)) * sigma * math.sqrt(widest)
    half = target.value * abs(mean) if target.relative else target.value
    advice.target_half_width = half
    if half <= 0:
        advice.note = "the response's mean is 0: a relative target means nothing"
        return advice
    expected, assured = required_replicates(
        sigma, nu, c, points, params, half, confidence=confidence, assurance=assurance
    )
    advice.replicates_expected, advice.replicates_assured = expected, assured
    if assured is None:
        advice.note = f"out of reach: more than {MAX_REPLICATES} replicates"
    return advice
