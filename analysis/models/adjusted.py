"""Effects adjusted for what the design did not control: a covariate (ANCOVA) or a block.

The noise guard measures, per trial, how much slower than its peers the machine was (the
calibration's deviation from its limit group's median) and which node each trial ran on. Two
ways to take that out of the effects, both beside the plain fit, never instead of it:

- the calibration deviation as a covariate: the factorial model plus one centred column, so each
  effect is read at the campaign's typical calibration;
- the node as a block: the model plus Sum-coded node columns (no interactions with the factors),
  so a node that is simply slower shifts its trials' level, not the effects.

Pure: the design matrix is :func:`trainbed.analysis.models.design_matrix.build`'s, the fit is
ordinary
least squares in numpy. A block or covariate confounded with the factors (every trial of a level
on one node) cannot be separated from them, and :func:`adjusted_fit` says so instead of fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from trainbed.analysis.models.design_matrix import build

ADJUSTED_COLUMNS = ["term", "q_plain", "q", "ci95_low", "ci95_high", "p"]


@dataclass
class AdjustedFit:
    """The factorial model refitted with extra columns."""

    response: str
    #: "covariate" or "block"
    kind: str
    n: int
    df_resid: int
    #: ADJUSTED_COLUMNS: each factorial term's coefficient without (``q_plain``) and with the
    #: adjustment (``q``, Jain's q_i), its 95% interval and p-value
    effects: pd.DataFrame
    #: the extra columns' own coefficients (the covariate's slope, or each node's shift)
    extra: pd.DataFrame


def block_columns(labels: pd.Series, name: str = "node") -> dict[str, np.ndarray]:
    """Sum-coded columns of a block: one per level but the last (+1 there, -1 at the last)."""
    levels = sorted(labels.astype(str).unique())
    values = labels.astype(str).to_numpy()
    last = np.where(values == levels[-1], -1.0, 0.0)
    return {f"{name}[{level}]": np.where(values == level, 1.0, last) for level in levels[:-1]}


def adjusted_fit(
    usable: pd.DataFrame,
    factors: list[dict[str, Any]],
    response: str,
    extra: dict[str, np.ndarray],
    kind: str,
) -> AdjustedFit | str:
    """The fit with ``extra`` columns (aligned with ``usable``'s rows), or why it cannot be."""
    if not extra:
        return "nothing to adjust for"
    y = usable[response].to_numpy(dtype=float)
    design = build(usable, factors)
    plain = design.matrix
    labels = [c for c in plain.columns if c != "Intercept"]
    full = pd.concat([plain, pd.DataFrame(extra, index=usable.index)], axis=1)
    x = full.to_numpy(dtype=float)
    if np.linalg.matrix_rank(x) < x.shape[1]:
        return (
            f"the {kind} is confounded with the factors in these runs (e.g. every trial of a "
            "level on one node), so it cannot be separated from their effects"
        )
    df = len(y) - x.shape[1]
    if df < 1:
        return f"no error degrees of freedom left with the {kind} ({len(y)} runs)"
    q_plain = np.linalg.lstsq(plain.to_numpy(dtype=float), y, rcond=None)[0]
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    residuals = y - x @ beta
    mse = float(residuals @ residuals) / df
    se = np.sqrt(np.clip(np.diag(np.linalg.inv(x.T @ x)) * mse, 0.0, None))
    t = float(stats.t.ppf(0.975, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * stats.t.sf(np.abs(beta / se), df)
    columns = list(full.columns)

    def row(label: str) -> dict[str, float | str]:
        j = columns.index(label)
        plain_value = float(q_plain[list(plain.columns).index(label)]) if label in plain else np.nan
        return {
            "term": label,
            "q_plain": plain_value,
            "q": float(beta[j]),
            "ci95_low": float(beta[j] - t * se[j]),
            "ci95_high": float(beta[j] + t * se[j]),
            "p": float(p[j]),
        }

    return AdjustedFit(
        response=response,
        kind=kind,
        n=len(y),
        df_resid=df,
        effects=pd.DataFrame([row(label) for label in labels], columns=ADJUSTED_COLUMNS),
        extra=pd.DataFrame([row(label) for label in extra], columns=ADJUSTED_COLUMNS),
    )
