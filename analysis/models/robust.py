"""Robust summaries: per design point, the median with a distribution-free confidence interval.

An ANOVA's intervals lean on normal errors; timings on a shared machine are often skewed (a
few slow runs). The median's interval from order statistics needs no such assumption (Hoefler &
Belli, SC'15): for n sorted runs x(1) <= ... <= x(n), [x(l), x(n+1-l)] covers the true median
with probability P(l <= B <= n - l), B ~ Binomial(n, 1/2). With few runs the best interval,
[min, max], may cover less than asked: the table shows the confidence it achieves, never a
pretended one. Where Shapiro-Wilk rejects normal residuals the report recommends the log model
or these medians, and shows both (:func:`normality_advice`). Pure.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trainbed.contract.layout import coded_column

ROBUST_COLUMNS = ["n", "median", "ci_low", "ci_high", "confidence_pct", "mean"]
#: Shapiro-Wilk's p below this rejects normal residuals.
NORMALITY_ALPHA = 0.05


def median_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, achieved confidence) of the order-statistic interval: the
    narrowest symmetric [x(l), x(n+1-l)] whose coverage reaches ``confidence``, or
    [min, max] with the coverage it has when none does. NaNs for no values."""
    x = np.sort(np.asarray(values, dtype=float)[~np.isnan(np.asarray(values, dtype=float))])
    n = len(x)
    if n == 0:
        return (np.nan, np.nan, np.nan, np.nan)
    median = float(np.median(x))
    if n == 1:
        return (median, np.nan, np.nan, 0.0)
    best = (1, 1.0 - 2.0 * stats.binom.cdf(0, n, 0.5))  # [x(1), x(n)]
    for low in range(1, n // 2 + 1):
        # [x(low), x(n+1-low)] misses when B <= low-1 or B >= n-low+1
        coverage = 1.0 - 2.0 * stats.binom.cdf(low - 1, n, 0.5)
        if coverage >= confidence:
            best = (low, coverage)
        else:
            break
    low, coverage = best
    return (median, float(x[low - 1]), float(x[n - low]), float(coverage))


def point_medians(
    trials: pd.DataFrame,
    factors: list[dict[str, Any]],
    response: str,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """One row per design point (its levels as written, then :data:`ROBUST_COLUMNS`) over the
    succeeded runs that have ``response``."""
    names = [f["name"] for f in factors]
    usable = trials[(trials["status"] == "succeeded") & trials[response].notna()]
    rows = []
    for _, group in usable.groupby([coded_column(n) for n in names], sort=True):
        values = group[response].to_numpy(dtype=float)
        median, low, high, achieved = median_ci(values, confidence)
        row = {n: group[n].iloc[0] for n in names}
        row.update(
            n=len(values),
            median=median,
            ci_low=low,
            ci_high=high,
            confidence_pct=100.0 * achieved,
            mean=float(np.mean(values)),
        )
        rows.append(row)
    return pd.DataFrame(rows, columns=[*names, *ROBUST_COLUMNS])


def normality_advice(shapiro: tuple[float, float] | None, positive: bool) -> str | None:
    """What the report says when Shapiro-Wilk rejects normal residuals; None when it does not
    (or was not run)."""
    if shapiro is None:
        return None
    w, p = shapiro
    if p >= NORMALITY_ALPHA:
        return None
    log = "the log model (below) or " if positive else ""
    return (
        f"Shapiro-Wilk rejects normal residuals (W = {w:.3f}, p = {p:.3g}): the ANOVA's "
        f"p-values and intervals are approximate. Read {log}the per-point medians with their "
        "distribution-free intervals (below)."
    )
