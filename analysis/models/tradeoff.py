"""Per design point, a response's estimate with its interval: from the runs and from the model.

The trade-off section compares configurations (design points), not single runs:

- from the runs: the mean of the point's runs that measured the response, with a t interval
  (none from a single run). A point any of whose runs never reached the target is
  ``censored`` on a censored response: its mean over the runs that did would flatter it;
- from the model: the fitted factorial model's prediction at the point (the mean over the
  blocks it ran in), with the confidence interval of that mean, fitted on the same runs as the
  response's section (``fit_runs``). Only points with a usable run are predicted: the model
  does not extrapolate to a configuration nothing measured. A saturated fit has no interval.

Pure: functions of the trials frame and the factor table.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from trainbed.analysis.models.design_matrix import build
from trainbed.analysis.models.fit_runs import CENSORED, left_out
from trainbed.contract.layout import coded_column

ESTIMATE_COLUMNS = ["mean", "low", "high", "n", "censored_runs", "censored"]


def design_points(trials: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The distinct design points, the first factor changing fastest: index ``p1``, ``p2``...;
    one coded column per factor, the levels as written, and ``levels`` ("a / b / c")."""
    coded = [coded_column(n) for n in names]
    points = trials[coded + names].drop_duplicates(coded)
    points = points.sort_values(coded[::-1]).reset_index(drop=True)
    points["levels"] = points[names].astype(str).agg(" / ".join, axis=1)
    points.index = [f"p{i}" for i in range(1, len(points) + 1)]
    return points


def _point_of(trials: pd.DataFrame, points: pd.DataFrame, names: list[str]) -> pd.Series:
    coded = [coded_column(n) for n in names]
    keys = {
        tuple(row): label for label, row in zip(points.index, points[coded].to_numpy(), strict=True)
    }
    return pd.Series([keys.get(tuple(row)) for row in trials[coded].to_numpy()], index=trials.index)


def run_estimates(
    trials: pd.DataFrame, names: list[str], response: str, confidence: float = 0.95
) -> pd.DataFrame:
    """Per design point: the runs' mean of ``response`` and its t interval (ESTIMATE_COLUMNS)."""
    points = design_points(trials, names)
    reasons = left_out(trials, response)
    where = _point_of(trials, points, names)
    rows = []
    for label in points.index:
        at = where.eq(label)
        values = trials.loc[at & reasons.eq(""), response].astype(float)
        censored_runs = int((at & reasons.eq(CENSORED)).sum())
        n = len(values)
        mean = float(values.mean()) if n else np.nan
        low = high = np.nan
        if n >= 2:
            half = stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / np.sqrt(n)
            low, high = mean - half, mean + half
        rows.append((mean, low, high, n, censored_runs, censored_runs > 0))
    return pd.DataFrame(rows, index=points.index, columns=ESTIMATE_COLUMNS)


def model_estimates(
    trials: pd.DataFrame,
    factors: list[dict[str, Any]],
    response: str,
    *,
    main_effects_only: bool = False,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per design point: the model's mean of ``response`` and its confidence interval; NaN
    where the point has no usable run, everywhere when the runs cannot be fitted. A response
    that never varies is its one value, without an interval."""
    names = [f["name"] for f in factors]
    points = design_points(trials, names)
    empty = pd.DataFrame(np.nan, index=points.index, columns=["mean", "low", "high"])
    usable = trials[left_out(trials, response).eq("")]
    if usable.empty:
        return empty
    if usable[response].nunique() < 2:  # nothing to fit: the model is that one value
        measured = _point_of(usable, points, names).unique()
        empty.loc[measured, "mean"] = float(usable[response].iloc[0])
        return empty
    if len(usable) < 2:
        return empty
    design = build(usable, factors, main_effects_only=main_effects_only)
    if not design.terms:
        return empty
    y = usable[response].to_numpy(dtype=float)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        model = sm.OLS(y, design.matrix).fit()
        where = _point_of(usable, points, names)
        rows = design.matrix.groupby(where).mean().reindex(points.index).dropna()
        prediction = model.get_prediction(rows.to_numpy())
        mean = np.asarray(prediction.predicted_mean, dtype=float)
        if model.df_resid > 0:
            interval = np.asarray(prediction.conf_int(alpha=1 - confidence), dtype=float)
        else:
            interval = np.full((len(rows), 2), np.nan)
    out = empty.copy()
    out.loc[rows.index, "mean"] = mean
    out.loc[rows.index, "low"] = interval[:, 0]
    out.loc[rows.index, "high"] = interval[:, 1]
    return out
