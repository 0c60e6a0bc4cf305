"""ANOVA per response: OLS on the coded design, a type-3 table, Jain's effects with confidence
intervals, the allocation of variation, and residual diagnostics. Pure (frames in, frames out).

Two-level factors enter as their ±1 coded columns in the design's own level order (low = -1),
never alphabetically, which is Sum coding; with an orthogonal design each coefficient is Jain's
q_i and each term's sum of squares is N·q_i². A fractional design fits one representative per
alias set, labelled with its aliases. Factors with more levels enter as categoricals with Sum
contrasts in their written order. Without error degrees of freedom (an unreplicated saturated
design) Lenth's pseudo standard error replaces the F-tests.

The effects frame names its convention in its columns: ``q`` is Jain's q_i (half the change
from the low to the high level), ``effect`` is Montgomery's effect (= 2q, the whole change), and
its first row, ``mean``, is q0 (the intercept) with its intervals. Values whose size is below
numerical noise (:data:`NOISE`) are exactly 0, so a saturated design's residual is 0, not 3e-27.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats

from trainbed.analysis.models.design_matrix import ModelTerm, build

ANOVA_COLUMNS = ["term", "sum_sq", "df", "F", "PR(>F)"]
EFFECT_COLUMNS = [
    "term",
    "q",
    "q_se",
    "q_ci95_low",
    "q_ci95_high",
    "q_ci90_low",
    "q_ci90_high",
    "effect",
    "variation_pct",
    "aliases",
]
ALLOCATION_COLUMNS = ["term", "sum_sq", "variation_pct"]
MEAN_TERM = "mean"
#: Relative size below which a number is rounding noise: an estimate smaller than NOISE·max|y|,
#: or a sum of squares smaller than N·(NOISE·max|y|)², is set to exactly 0. Double precision
#: leaves about 1e-15·max|y| of noise per value, so this is far above it and far below any
#: effect a measurement could show.
NOISE = 1e-10


@dataclass
class Fit:
    response: str
    transform: str | None
    n: int
    anova: pd.DataFrame
    #: EFFECT_COLUMNS: ``mean`` (q0) first, one row per term (a multi-level term's share on its
    #: own row, then one row per level), ``Error`` last
    effects: pd.DataFrame
    r2: float
    adj_r2: float
    df_resid: int
    fitted: pd.Series
    residuals: pd.Series
    run_order: pd.Series
    shapiro: tuple[float, float] | None
    lenth_pse: float | None
    #: degrees of freedom of the intervals' t: the error df, or m/3 with Lenth's PSE
    ci_df: float
    balanced: bool
    suggestion: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def allocation(self) -> pd.DataFrame:
        """Jain's allocation of variation: each term's sum of squares and its share of SST,
        with the error's last (SS0, the mean's, is not part of the variation)."""
        shares = self.effects[self.effects["variation_pct"].notna()]
        sums = self.anova.set_index("term")["sum_sq"].rename({"Residual": "Error"})
        frame = shares[["term", "variation_pct"]].copy()
        frame.insert(1, "sum_sq", frame["term"].map(sums))
        return frame.reset_index(drop=True)[ALLOCATION_COLUMNS]


def _quiet(values: np.ndarray | float, scale: float) -> np.ndarray | float:
    """``values`` with every entry whose size is below ``scale`` set to exactly 0."""
    if np.isscalar(values):
        return 0.0 if abs(values) < scale else float(values)  # type: ignore[arg-type]
    out = np.asarray(values, dtype=float).copy()
    out[np.abs(out) < scale] = 0.0
    return out


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
    trials: pd.DataFrame,
    factors: list[dict[str, Any]],
    response: str,
    *,
    log: bool = False,
    main_effects_only: bool = False,
) -> Fit:
    """Fit one response over the succeeded trials that have it; ``main_effects_only`` for a
    screening design (``design_notes.is_screening``). Fold-over blocks get a block term."""
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
    design = build(usable, factors, main_effects_only=main_effects_only)
    if not design.terms:
        raise NotFittable("no term is estimable from the runs that remain")
    notes = list(design.notes)
    y = usable[response].to_numpy(dtype=float)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        model = sm.OLS(y, design.matrix).fit()
    df_resid = int(round(model.df_resid))
    n = len(y)
    q_noise = NOISE * float(np.abs(y).max())
    ss_noise = n * q_noise**2
    sst = float(_quiet(float(((y - y.mean()) ** 2).sum()), ss_noise))
    resid = _quiet(np.asarray(model.resid), q_noise)
    sse = float(_quiet(float((resid**2).sum()), ss_noise))
    mse = sse / df_resid if df_resid > 0 else np.nan
    sums = {
        name: (float(_quiet(ss, ss_noise)), df)
        for name, (ss, df) in type3_sums_of_squares(y, design.matrix, design.terms).items()
    }
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

    params = pd.Series(_quiet(model.params.to_numpy(), q_noise), index=model.params.index)
    pse = None
    cov = None
    if df_resid > 0:
        se = model.bse
        cov = model.cov_params()
        ci_df = float(df_resid)
    else:
        pse = float(_quiet(lenth_pse(params.drop("Intercept").to_numpy()), q_noise))
        se = pd.Series(pse, index=params.index)
        ci_df = max((len(params) - 1) / 3.0, 1.0)
        notes.append(f"no error degrees of freedom: intervals from Lenth's PSE = {pse:.4g}")
    effects = _effects_frame(design.terms, params, se, cov, pse, ci_df, sums, sst, sse)
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
    if n >= 3 and df_resid > 0 and np.ptp(resid) > 1e-12:
        result = stats.shapiro(resid)
        shapiro = (float(result.statistic), float(result.pvalue))
    index = usable["trial_id"].to_numpy()
    return Fit(
        response=response,
        transform="log" if log else None,
        n=n,
        anova=anova,
        effects=effects,
        r2=1.0 - sse / sst if sst > 0 else np.nan,
        adj_r2=1.0 - (sse / df_resid) / (sst / (n - 1)) if df_resid > 0 and sst > 0 else np.nan,
        df_resid=df_resid,
        fitted=pd.Series(y - resid, index=index),
        residuals=pd.Series(resid, index=index),
        run_order=pd.Series(usable["run_order"].to_numpy(), index=index),
        shapiro=shapiro,
        lenth_pse=pse,
        ci_df=ci_df,
        balanced=bool(balanced),
        suggestion=None if log else transform_suggestion(usable[response]),
        notes=notes,
    )


def _effects_frame(
    terms: list[ModelTerm],
    params: pd.Series,
    se: pd.Series,
    cov: pd.DataFrame | None,
    pse: float | None,
    ci_df: float,
    sums: dict[str, tuple[float, int]],
    sst: float,
    sse: float,
) -> pd.DataFrame:
    """The effects table: ``mean`` (q0), each term (a multi-level term's share on its own row,
    then its levels' deviations), ``Error``."""
    rows: list[dict[str, Any]] = []

    def add(label: str, q: float, error: float, share: float, aliases: str, effect: bool) -> None:
        low95, high95 = _interval(q, error, ci_df, 0.95)
        low90, high90 = _interval(q, error, ci_df, 0.90)
        rows.append(
            {
                "term": label,
                "q": q,
                "q_se": error,
                "q_ci95_low": low95,
                "q_ci95_high": high95,
                "q_ci90_low": low90,
                "q_ci90_high": high90,
                "effect": 2 * q if effect else np.nan,
                "variation_pct": share,
                "aliases": aliases,
            }
        )

    def share_only(label: str, share: float, aliases: str = "") -> None:
        rows.append({"term": label, "variation_pct": share, "aliases": aliases})

    add(MEAN_TERM, float(params["Intercept"]), float(se["Intercept"]), np.nan, "", False)
    for term in terms:
        share = sums[term.name][0] / sst * 100 if sst > 0 else np.nan
        if len(term.labels) == 1 and term.labels[0] == term.name:
            label = term.name
            add(label, float(params[label]), float(se[label]), share, term.aliases, True)
            continue
        share_only(term.name, share, term.aliases)
        for label in term.labels:
            add(label, float(params[label]), float(se[label]), np.nan, "", False)
        if term.last_level:
            labels = list(term.labels)
            value = -float(params[labels].sum())
            error = (
                float(np.sqrt(cov.loc[labels, labels].to_numpy().sum()))
                if cov is not None
                else float(pse or 0.0)
            )
            add(term.last_level, value, error, np.nan, "", False)
    share_only("Error", sse / sst * 100 if sst else np.nan)
    frame = pd.DataFrame(rows, columns=EFFECT_COLUMNS)
    frame["aliases"] = frame["aliases"].fillna("")
    return frame
