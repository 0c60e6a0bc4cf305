"""ANOVA per response: OLS on the coded design, a type-3 table, Jain's effects with confidence
intervals, the allocation of variation, and residual diagnostics. Pure (frames in, frames out).

Two-level factors enter as their ±1 coded columns in the design's own level order (low = -1),
never alphabetically, which is Sum coding; with an orthogonal design each coefficient is Jain's
q_i and each term's sum of squares is N·q_i². A fractional design fits one representative per
alias set, labelled with its aliases. Factors with more levels enter as categoricals with Sum
contrasts in their written order. Without error degrees of freedom (an unreplicated saturated
design) Lenth's pseudo standard error replaces the F-tests.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from trainbed.analysis.design_matrix import ModelTerm, build

ANOVA_COLUMNS = ["term", "sum_sq", "df", "F", "PR(>F)"]
EFFECT_COLUMNS = ["term", "effect", "ci95_low", "ci95_high", "variation_pct", "aliases"]


@dataclass
class Fit:
    response: str
    transform: str | None
    n: int
    anova: pd.DataFrame
    effects: pd.DataFrame
    effects90: pd.DataFrame
    r2: float
    adj_r2: float
    df_resid: int
    fitted: pd.Series
    residuals: pd.Series
    run_order: pd.Series
    shapiro: tuple[float, float] | None
    lenth_pse: float | None
    balanced: bool
    suggestion: str | None
    notes: list[str] = field(default_factory=list)


class NotFittable(ValueError):
    """Too few usable runs, or nothing varies: the reason goes into the report."""


def transform_suggestion(y: pd.Series) -> str | None:
    """Jain: when y_max / y_min > 10 (all positive), the log of y is usually the better scale."""
    y = y.dropna()
    if len(y) and (y > 0).all() and y.max() / y.min() > 10:
        return f"y_max/y_min = {y.max() / y.min():.1f} > 10: consider a log transform (--log)"
    return None


def lenth_pse(effects: np.ndarray) -> float:
    """Lenth's pseudo standard error of a set of effect estimates."""
    absolute = np.abs(effects)
    s0 = 1.5 * np.median(absolute)
    trimmed = absolute[absolute < 2.5 * s0]
    return float(1.5 * np.median(trimmed)) if len(trimmed) else float(s0)


def type3_sums_of_squares(
    y: np.ndarray, matrix: pd.DataFrame, terms: list[ModelTerm]
) -> dict[str, tuple[float, int]]:
    """Type-3 SS of each term: SSE without the term's columns minus SSE with all of them.

    With Sum/±1 coding this is the same number as statsmodels' ``anova_lm(typ=3)`` (the tests
    check it); computing it directly also works with no error degrees of freedom, where
    ``anova_lm`` cannot run its F-tests.
    """
    x = matrix.to_numpy()
    full = np.linalg.lstsq(x, y, rcond=None)[0]
    sse = float(((y - x @ full) ** 2).sum())
    out = {}
    for term in terms:
        keep = [c for c in matrix.columns if c not in term.labels]
        reduced = matrix[keep].to_numpy()
        beta = np.linalg.lstsq(reduced, y, rcond=None)[0]
        out[term.name] = (float(((y - reduced @ beta) ** 2).sum()) - sse, len(term.labels))
    return out


def _interval(estimate: float, se: float, df: float, level: float) -> tuple[float, float]:
    margin = float(stats.t.ppf(0.5 + level / 2, df)) * se
    return estimate - margin, estimate + margin


def fit_response(
    trials: pd.DataFrame, factors: list[dict[str, Any]], response: str, *, log: bool = False
) -> Fit:
    """Fit one response over the succeeded trials that have it."""
    usable = trials[(trials["status"] == "succeeded") & trials[response].notna()].copy()
    if log:
        if (usable[response] <= 0).any():
            raise NotFittable(f"log({response}) needs positive values")
        usable[response] = np.log(usable[response])
    names = [f["name"] for f in factors]
    if len(usable) < 2:
        raise NotFittable(f"only {len(usable)} usable runs")
    if usable[response].nunique() < 2:
        raise NotFittable(f"{response} does not vary across the runs")
    design = build(usable, factors)
    if not design.terms:
        raise NotFittable("no term is estimable from the runs that remain")
    notes = list(design.notes)
    y = usable[response].to_numpy(dtype=float)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        model = sm.OLS(y, design.matrix).fit()
    df_resid = int(round(model.df_resid))
    sst = float(((y - y.mean()) ** 2).sum())
    sse = float((model.resid**2).sum())
    mse = sse / df_resid if df_resid > 0 else np.nan
    sums = type3_sums_of_squares(y, design.matrix, design.terms)
    anova_rows = []
    for term in design.terms:
        ss, df = sums[term.name]
        f_value = (ss / df) / mse if df_resid > 0 and mse > 0 else np.nan
        p_value = float(stats.f.sf(f_value, df, df_resid)) if np.isfinite(f_value) else np.nan
        anova_rows.append(
            {"term": term.name, "sum_sq": ss, "df": float(df), "F": f_value, "PR(>F)": p_value}
        )
    anova_rows.append(
        {"term": "Residual", "sum_sq": sse, "df": float(df_resid), "F": np.nan, "PR(>F)": np.nan}
    )
    anova = pd.DataFrame(anova_rows, columns=ANOVA_COLUMNS)

    params = model.params.drop("Intercept")
    pse = None
    cov = None
    if df_resid > 0:
        se = model.bse.drop("Intercept")
        cov = model.cov_params()
        ci_df = float(df_resid)
    else:
        pse = lenth_pse(params.to_numpy())
        se = pd.Series(pse, index=params.index)
        ci_df = max(len(params) / 3.0, 1.0)
        notes.append(f"no error degrees of freedom: intervals from Lenth's PSE = {pse:.4g}")
    effect_rows, effect90_rows = [], []

    def add(label: str, value: float, error: float, share: float, aliases: str) -> None:
        low95, high95 = _interval(value, error, ci_df, 0.95)
        low90, high90 = _interval(value, error, ci_df, 0.90)
        effect_rows.append(
            {
                "term": label,
                "effect": value,
                "ci95_low": low95,
                "ci95_high": high95,
                "variation_pct": share,
                "aliases": aliases,
            }
        )
        effect90_rows.append({"term": label, "ci90_low": low90, "ci90_high": high90})

    for term in design.terms:
        share = sums[term.name][0] / sst * 100 if sst > 0 else np.nan
        if len(term.labels) == 1 and term.labels[0] == term.name:
            label = term.name
            add(label, float(params[label]), float(se[label]), share, term.aliases)
            continue
        # a multi-level term: its share on its own line, then one effect per level
        effect_rows.append(
            {
                "term": term.name,
                "effect": np.nan,
                "ci95_low": np.nan,
                "ci95_high": np.nan,
                "variation_pct": share,
                "aliases": term.aliases,
            }
        )
        effect90_rows.append({"term": term.name, "ci90_low": np.nan, "ci90_high": np.nan})
        for label in term.labels:
            add(label, float(params[label]), float(se[label]), np.nan, "")
        if term.last_level:
            labels = list(term.labels)
            value = -float(params[labels].sum())
            error = (
                float(np.sqrt(cov.loc[labels, labels].to_numpy().sum()))
                if cov is not None
                else float(pse or 0.0)
            )
            add(term.last_level, value, error, np.nan, "")
    effect_rows.append(
        {
            "term": "Error",
            "effect": np.nan,
            "ci95_low": np.nan,
            "ci95_high": np.nan,
            "variation_pct": sse / sst * 100 if sst else np.nan,
            "aliases": "",
        }
    )
    counts = usable.groupby([f"{n}_coded" for n in names]).size()
    expected = trials.groupby([f"{n}_coded" for n in names]).size()
    balanced = counts.nunique() == 1 and len(counts) == len(expected)
    if not balanced:
        notes.append(
            "unbalanced design: the design points have different numbers of usable runs "
            f"({0 if len(counts) < len(expected) else counts.min()} to {counts.max()}); sums of "
            "squares are type 3 and the allocation of variation need not add up to 100%"
        )
    shapiro = None
    if len(y) >= 3 and df_resid > 0 and np.ptp(model.resid) > 1e-12:
        result = stats.shapiro(model.resid)
        shapiro = (float(result.statistic), float(result.pvalue))
    index = usable["trial_id"].to_numpy()
    return Fit(
        response=response,
        transform="log" if log else None,
        n=len(y),
        anova=anova,
        effects=pd.DataFrame(effect_rows, columns=EFFECT_COLUMNS),
        effects90=pd.DataFrame(effect90_rows),
        r2=float(model.rsquared) if sst > 0 else np.nan,
        adj_r2=float(model.rsquared_adj) if df_resid > 0 else np.nan,
        df_resid=df_resid,
        fitted=pd.Series(np.asarray(model.fittedvalues), index=index),
        residuals=pd.Series(np.asarray(model.resid), index=index),
        run_order=pd.Series(usable["run_order"].to_numpy(), index=index),
        shapiro=shapiro,
        lenth_pse=pse,
        balanced=bool(balanced),
        suggestion=None if log else transform_suggestion(usable[response]),
        notes=notes,
    )
