"""One response's fitted model as a predictor: the mean at any point, with its intervals. Pure.

It is the model the report fits (:func:`trainbed.analysis.models.anova.fit_response`): the same runs
(succeeded, with the response), the same model matrix
(:func:`~trainbed.analysis.models.design_matrix.build`: the same terms, coding and block term),
fitted by least squares. At a point x0 (a row of
that matrix) the predicted mean is x0·β, with

- se_mean = sqrt(MSE · x0ᵀ(XᵀX)⁻¹x0), the confidence interval of the mean there, and
- se_pred = sqrt(MSE · (1 + x0ᵀ(XᵀX)⁻¹x0)), the prediction interval of one new run there,

on the error degrees of freedom. Without any (a saturated design) there are no intervals: the
numbers are None, never made up. A block term is set to its average (0), so a prediction is for
the design as a whole, not for one block.

In a fraction a term stands for its whole alias set. At the runs it makes no difference which
member is active; elsewhere it does: :meth:`Predictor.aliased_at` names the terms whose aliases
would predict differently at x0 (the prediction assumes the representative, the lowest-order
member), and the words of the defining relation that the point does not satisfy (assumed 0).
It imports neither scipy nor statsmodels (:mod:`~trainbed.analysis.models.student_t` gives the t),
so
``trainbed predict`` starts fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainbed.analysis.models import student_t
from trainbed.analysis.models.aliases import defining_relation
from trainbed.analysis.models.design_matrix import ModelTerm, build
from trainbed.contract.layout import BLOCK_COLUMN, coded_column

#: A factor's coded value at a point: ±1 (or between, interpolated) for a two-level factor, the
#: level index for a multi-level one, None for "averaged over its levels".
Coded = dict[str, float | None]


class NotPredictable(ValueError):
    """The response cannot be modelled from these runs (the reason is the message)."""


def t_quantile(level: float, df: float) -> float:
    """The two-sided ``level`` quantile of Student's t on ``df`` degrees of freedom."""
    return student_t.quantile(0.5 + level / 2, df)


def t_cdf(value: float, df: float) -> float:
    return student_t.cdf(value, df)


@dataclass(frozen=True)
class PointEstimate:
    """The model's numbers at one point; the standard errors are None without error df."""

    mean: float
    se_mean: float | None
    se_pred: float | None
    df: int


@dataclass(frozen=True)
class Predictor:
    response: str
    factors: list[dict[str, Any]]
    columns: list[str]
    terms: list[ModelTerm]
    beta: np.ndarray
    #: (XᵀX)⁻¹, so MSE·xtx_inv is the coefficients' covariance
    xtx_inv: np.ndarray
    mse: float | None
    df_resid: int
    n: int
    #: the distinct design points the fit rests on, coded, one row per point (factor order)
    points: np.ndarray
    #: the defining relation's words over ``points`` (two-level designs), signed
    words: tuple[str, ...]

    @classmethod
    def fit(
        cls,
        trials: pd.DataFrame,
        factors: list[dict[str, Any]],
        response: str,
        *,
        main_effects_only: bool = False,
    ) -> Predictor:
        """Fit ``response`` over the usable runs, as the report does."""
        if response not in trials:
            raise NotPredictable(f"{response} was not measured")
        usable = trials[(trials["status"] == "succeeded") & trials[response].notna()]
        if len(usable) < 2 or usable[response].nunique() < 2:
            raise NotPredictable(f"{response}: too few usable runs, or it does not vary")
        design = build(usable, factors, main_effects_only=main_effects_only)
        x = design.matrix.to_numpy(dtype=float)
        y = usable[response].to_numpy(dtype=float)
        beta = np.linalg.lstsq(x, y, rcond=None)[0]
        df_resid = len(y) - x.shape[1]
        sse = float(((y - x @ beta) ** 2).sum())
        names = [f["name"] for f in factors]
        points = np.unique(usable[[coded_column(n) for n in names]].to_numpy(dtype=int), axis=0)
        two_level = all(len(f["levels"]) == 2 for f in factors)
        return cls(
            response=response,
            factors=factors,
            columns=list(design.matrix.columns),
            terms=design.terms,
            beta=beta,
            xtx_inv=np.linalg.inv(x.T @ x),
            mse=sse / df_resid if df_resid > 0 else None,
            df_resid=df_resid,
            n=len(y),
            points=points,
            words=tuple(defining_relation(points, names)) if two_level else (),
        )

    def _factor(self, name: str) -> dict[str, Any]:
        return next(f for f in self.factors if f["name"] == name)

    def _part(self, part: str, coded: Coded) -> float:
        """One factor's contribution to a column: its coded value, or a Sum contrast."""
        if "[" not in part:
            value = coded.get(part)
            return 0.0 if value is None else float(value)
        name, level = part[:-1].split("[", 1)
        value = coded.get(name)
        if value is None:
            return 0.0  # Sum contrasts average to 0 over the levels
        levels = [str(v) for v in self._factor(name)["levels"]]
        index = int(value)
        if index == levels.index(level):
            return 1.0
        return -1.0 if index == len(levels) - 1 else 0.0

    def row(self, coded: Coded) -> np.ndarray:
        """The model-matrix row of a point (blocks at their average)."""
        out = []
        for column in self.columns:
            if column == "Intercept":
                out.append(1.0)
            elif column == BLOCK_COLUMN or column.startswith(f"{BLOCK_COLUMN}["):
                out.append(0.0)
            else:
                out.append(float(np.prod([self._part(p, coded) for p in column.split(":")])))
        return np.array(out)

    def estimate(self, coded: Coded) -> PointEstimate:
        return self.estimate_row(self.row(coded))

    def estimate_row(self, x0: np.ndarray) -> PointEstimate:
        mean = float(x0 @ self.beta)
        if self.mse is None:
            return PointEstimate(mean, None, None, 0)
        leverage = float(x0 @ self.xtx_inv @ x0)
        return PointEstimate(
            mean,
            float(np.sqrt(self.mse * leverage)),
            float(np.sqrt(self.mse * (1.0 + leverage))),
            self.df_resid,
        )

    def difference(self, a: Coded, b: Coded) -> PointEstimate:
        """The mean at ``a`` minus the mean at ``b``, with the standard error of that
        difference (the two share the coefficients, so it is not from two separate intervals)."""
        return self.estimate_row(self.row(a) - self.row(b))

    def is_run(self, coded: Coded) -> bool:
        """Whether the point is one of the design points the fit rests on."""
        names = [f["name"] for f in self.factors]
        values = [coded.get(n) for n in names]
        if any(v is None or float(v) != int(v) for v in values):
            return False
        return bool((self.points == np.array(values, dtype=int)).all(axis=1).any())

    def aliased_at(self, coded: Coded) -> list[str]:
        """The aliasing a prediction at ``coded`` rests on: each fitted term whose alias would
        give another value here (``cpu (not -batch_size:lr)``), and each defining-relation word
        the point does not satisfy (``batch_size:lr:cpu = 0``: assumed). Empty at a design
        point."""
        out = []
        for term in self.terms:
            if not term.aliases or len(term.labels) != 1 or "[" in term.labels[0]:
                continue
            own = self._part_product(term.name, coded)
            differing = []
            for alias in term.aliases.split(" = "):
                sign = -1.0 if alias.startswith("-") else 1.0
                if abs(sign * self._part_product(alias.lstrip("-"), coded) - own) > 1e-9:
                    differing.append(alias)
            if differing:
                out.append(f"{term.name} (not {' or '.join(differing)})")
        for word in self.words:
            sign = -1.0 if word.startswith("-") else 1.0
            value = self._part_product(word[1:], coded)
            if abs(value - sign) > 1e-9:
                out.append(f"{word[1:]} = 0")
        return out

    def _part_product(self, name: str, coded: Coded) -> float:
        return float(np.prod([self._part(p, coded) for p in name.split(":")]))
