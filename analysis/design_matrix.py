"""The model matrix of one fit: which terms, which columns, in which coding. Pure.

Coding is explicit, never alphabetical:

- a two-level factor is its ``<name>_coded`` column from design.csv (low = -1, high = +1, in the
  order the levels were written), so its coefficient is Jain's q_i and a positive effect means
  the high level raises the response;
- a factor with more levels gets Sum (deviation) contrasts over its written level order: column
  j is +1 at level j, -1 at the last level, 0 elsewhere, so each coefficient is that level's
  deviation from the grand mean and the last level's is minus their sum;
- an interaction is the elementwise product of its factors' columns.

In an all-two-level design the terms are the representatives of the alias sets the runs allow
(``aliases.estimable_terms``). With a multi-level factor the terms are the main effects, plus the
two-factor interactions when they still leave error degrees of freedom. Either way a term that
is linearly dependent on earlier ones (a lost design point can do that) is dropped with a note
instead of being fitted through a pseudo-inverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from trainbed.analysis.aliases import estimable_terms
from trainbed.contract.layout import coded_column


@dataclass(frozen=True)
class ModelTerm:
    """One term of the model: its name (``cpu``, ``cpu:memory``), its aliases, and its columns.

    ``labels`` names each of its columns (and so each coefficient); ``last_level`` labels the
    level whose effect is minus the sum of the others (a multi-level main effect only).
    """

    name: str
    aliases: str
    labels: tuple[str, ...]
    last_level: str | None = None


@dataclass
class DesignMatrix:
    matrix: pd.DataFrame  # "Intercept" first, then every term's columns
    terms: list[ModelTerm]
    notes: list[str] = field(default_factory=list)


def _factor_columns(
    factor: dict[str, Any], coded: np.ndarray
) -> tuple[list[np.ndarray], list[str], str | None]:
    """A factor's columns, the label of each, and its last level's label (multi-level only)."""
    name = factor["name"]
    levels = [str(level) for level in factor["levels"]]
    if len(levels) == 2:
        return [coded.astype(float)], [name], None
    index = coded.astype(int)
    columns = []
    for j in range(len(levels) - 1):
        columns.append(np.where(index == j, 1.0, np.where(index == len(levels) - 1, -1.0, 0.0)))
    return columns, [f"{name}[{level}]" for level in levels[:-1]], f"{name}[{levels[-1]}]"


Block = dict[str, np.ndarray]  # coefficient label -> column


def _candidates(
    usable: pd.DataFrame, factors: list[dict[str, Any]]
) -> list[tuple[ModelTerm, Block]]:
    names = [f["name"] for f in factors]
    coded = {n: usable[coded_column(n)].to_numpy() for n in names}
    if all(len(f["levels"]) == 2 for f in factors):
        points = np.unique(np.column_stack([coded[n] for n in names]).astype(int), axis=0)
        out = []
        for t in estimable_terms(points, names):
            column = np.prod(np.column_stack([coded[f] for f in t.factors]), axis=1)
            out.append((ModelTerm(t.name, t.alias_text, (t.name,)), {t.name: column.astype(float)}))
        return out
    mains: list[tuple[ModelTerm, Block]] = []
    for factor in factors:
        columns, labels, last = _factor_columns(factor, coded[factor["name"]])
        mains.append(
            (
                ModelTerm(factor["name"], "", tuple(labels), last),
                dict(zip(labels, columns, strict=True)),
            )
        )
    pairs: list[tuple[ModelTerm, Block]] = []
    for (a, block_a), (b, block_b) in combinations(mains, 2):
        block = {f"{x}:{y}": block_a[x] * block_b[y] for x in block_a for y in block_b}
        pairs.append((ModelTerm(f"{a.name}:{b.name}", "", tuple(block)), block))
    width = 1 + sum(len(block) for _, block in mains + pairs)
    return mains + pairs if len(usable) - width >= 2 else mains


def build(usable: pd.DataFrame, factors: list[dict[str, Any]]) -> DesignMatrix:
    """The model matrix over the usable runs: estimable terms only, each one full rank."""
    candidates = _candidates(usable, factors)
    notes: list[str] = []
    if not all(len(f["levels"]) == 2 for f in factors) and len(factors) > 1:
        if not any(":" in term.name for term, _ in candidates):
            notes.append("two-factor interactions left out: too few runs to estimate them")
    matrix = pd.DataFrame({"Intercept": np.ones(len(usable))}, index=usable.index)
    rank = 1
    terms: list[ModelTerm] = []
    for term, block in candidates:
        trial = pd.concat([matrix, pd.DataFrame(block, index=usable.index)], axis=1)
        new_rank = int(np.linalg.matrix_rank(trial.to_numpy()))
        if new_rank == rank + len(block):
            matrix, rank = trial, new_rank
            terms.append(term)
            continue
        why = (
            "not enough runs left to estimate it"
            if rank + len(block) > len(usable)
            else "confounded with earlier terms in the runs that remain"
        )
        notes.append(f"term {term.name} not fitted: {why}")
    return DesignMatrix(matrix=matrix, terms=terms, notes=notes)
