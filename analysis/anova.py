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
import statsmodels.formula.api as smf
from scipy import stats
from statsmodels.stats.anova import anova_lm

from trainbed.analysis.aliases import estimable_terms

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


def _two_level(factor: dict[str, Any]) -> bool:
    return len(factor.get("levels") or []) == 2


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


def _type3(model: Any, formula: str, data: pd.DataFrame) -> pd.DataFrame:
    """statsmodels' type-3 table; without error df (where its F-tests cannot run) the same sums
    of squares by dropping each term in turn: SS(term) = SSE(without it) - SSE(full)."""
    if model.df_resid > 0:
        return anova_lm(model, typ=3)
    lhs, rhs = formula.split("~", 1)
    terms = [t.strip() for t in rhs.split("+")]
    sse = float((model.resid**2).sum())
    rows = {}
    for term in terms:
        rest = [t for t in terms if t != term] or ["1"]
        reduced = smf.ols(f"{lhs}~ " + " + ".join(rest), data=data).fit()
        rows[term] = {
            "sum_sq": float((reduced.resid**2).sum()) - sse,
            "df": float(model.df_model - reduced.df_model),
            "F": np.nan,
            "PR(>F)": np.nan,
        }
    rows["Residual"] = {"sum_sq": sse, "df": 0.0, "F": np.nan, "PR(>F)": np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


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
    data = pd.DataFrame({"y": usable[response].to_numpy(dtype=float)})
    labels: dict[str, tuple[str, str]] = {}  # column -> (term name, aliases)
    notes: list[str] = []
    coded = {n: usable[f"{n}_coded"].to_numpy() for n in names}
    if all(_two_level(f) for f in factors):
        points = np.unique(np.column_stack([coded[n] for n in names]).astype(int), axis=0)
        terms = estimable_terms(points, names)
        for i, term in enumerate(terms):
            column = np.prod(np.column_stack([coded[f] for f in term.factors]), axis=1)
            data[f"t{i}"] = column.astype(float)
            labels[f"t{i}"] = (term.name, term.alias_text)
        while len(labels) >= len(data):  # keep at least the intercept's degree of freedom
            dropped = list(labels)[-1]
            notes.append(f"dropped {labels[dropped][0]}: not enough runs to estimate it")
            labels.pop(dropped)
            data = data.drop(columns=[dropped])
        formula = "y ~ " + (" + ".join(labels) if labels else "1")
    else:
        parts = []
        for i, factor in enumerate(factors):
            column = f"x{i}"
            if _two_level(factor):
                data[column] = coded[factor["name"]].astype(float)
                parts.append(column)
            else:
                data[column] = coded[factor["name"]].astype(int)
                levels = list(range(len(factor["levels"])))
                parts.append(f"C({column}, Sum, levels={levels})")
            labels[parts[-1]] = (factor["name"], "")
        formula = "y ~ " + " + ".join(parts)
        interactions = [f"{a}:{b}" for j, a in enumerate(parts) for b in parts[j + 1 :]]
        with_pairs = formula + (" + " + " + ".join(interactions) if interactions else "")
        pair_df = sum(1 for _ in interactions)
        if interactions and len(data) > 2 * (len(parts) + pair_df) + 1:
            formula = with_pairs
            for text in interactions:
                a, b = text.split(":", 1)
                labels[text] = (f"{labels[a][0]}:{labels[b][0]}", "")
        elif interactions:
            notes.append("two-factor interactions left out: too few runs for them")
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        model = smf.ols(formula, data=data).fit()
        table = _type3(model, formula, data)
    df_resid = int(round(model.df_resid))
    sst = float(((data["y"] - data["y"].mean()) ** 2).sum())
    sse = float((model.resid**2).sum())
    anova_rows = []
    for index, row in table.iterrows():
        if index == "Intercept":
            continue
        name = "Residual" if index == "Residual" else labels.get(str(index), (str(index), ""))[0]
        anova_rows.append(
            {
                "term": name,
                "sum_sq": float(row["sum_sq"]),
                "df": float(row["df"]),
                "F": float(row["F"]) if df_resid > 0 else np.nan,
                "PR(>F)": float(row["PR(>F)"]) if df_resid > 0 else np.nan,
            }
        )
    anova = pd.DataFrame(anova_rows, columns=ANOVA_COLUMNS)
    sum_sq = {r["term"]: r["sum_sq"] for r in anova_rows}

    params = model.params.drop("Intercept")
    pse = None
    if df_resid > 0:
        ci95 = model.conf_int(0.05).drop("Intercept")
        ci90 = model.conf_int(0.10).drop("Intercept")
    else:
        pse = lenth_pse(params.to_numpy())
        d = max(len(params) / 3.0, 1.0)
        m95, m90 = stats.t.ppf(0.975, d) * pse, stats.t.ppf(0.95, d) * pse
        ci95 = pd.DataFrame({0: params - m95, 1: params + m95})
        ci90 = pd.DataFrame({0: params - m90, 1: params + m90})
        notes.append(f"no error degrees of freedom: intervals from Lenth's PSE = {pse:.4g}")
    effect_rows, effect90_rows = [], []
    for coefficient, value in params.items():
        base = str(coefficient)
        term, aliases = labels.get(base, (None, ""))
        if term is None:  # a Sum-contrast level of a categorical: "C(x0, Sum, ...)[S.1]"
            stem, _, level = base.partition("[")
            term = labels.get(stem, (stem, ""))[0] + f"[{level.rstrip(']').removeprefix('S.')}]"
            share = np.nan
        else:
            share = sum_sq.get(term, np.nan) / sst * 100 if sst > 0 else np.nan
        effect_rows.append(
            {
                "term": term,
                "effect": float(value),
                "ci95_low": float(ci95.loc[coefficient, 0]),
                "ci95_high": float(ci95.loc[coefficient, 1]),
                "variation_pct": share,
                "aliases": aliases,
            }
        )
        effect90_rows.append(
            {
                "term": term,
                "ci90_low": float(ci90.loc[coefficient, 0]),
                "ci90_high": float(ci90.loc[coefficient, 1]),
            }
        )
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
    balanced = counts.nunique() == 1
    if not balanced:
        notes.append(
            "unbalanced design: design points have different numbers of usable runs "
            f"({counts.min()} to {counts.max()}); sums of squares are type 3 and the "
            "allocation of variation need not add up to 100%"
        )
    shapiro = None
    if len(data) >= 3 and df_resid > 0 and np.ptp(model.resid.to_numpy()) > 1e-12:
        result = stats.shapiro(model.resid)
        shapiro = (float(result.statistic), float(result.pvalue))
    return Fit(
        response=response,
        transform="log" if log else None,
        n=len(data),
        anova=anova,
        effects=pd.DataFrame(effect_rows, columns=EFFECT_COLUMNS),
        effects90=pd.DataFrame(effect90_rows),
        r2=float(model.rsquared) if sst > 0 else np.nan,
        adj_r2=float(model.rsquared_adj) if df_resid > 0 else np.nan,
        df_resid=df_resid,
        fitted=pd.Series(model.fittedvalues.to_numpy(), index=usable["trial_id"]),
        residuals=pd.Series(model.resid.to_numpy(), index=usable["trial_id"]),
        run_order=pd.Series(usable["run_order"].to_numpy(), index=usable["trial_id"]),
        shapiro=shapiro,
        lenth_pse=pse,
        balanced=bool(balanced),
        suggestion=None if log else transform_suggestion(usable[response]),
        notes=notes,
    )
