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

Two cases fit fewer terms on purpose:

- ``main_effects_only`` (a screening design): a Plackett-Burman design aliases every main effect
  partially with many two-factor interactions, so only the main effects are fitted, each
  labelled with how many interactions it is correlated with and how strongly;
- blocks (design.csv's ``block`` column, from a fold-over): a block term comes first, after the
  intercept, so every effect is estimated within blocks; an effect confounded with the blocks
  (a word the fold-over dropped from the defining relation) is not fitted, and the block term
  names it as its alias. Two blocks are one ±1 column (block 1 = -1); more get Sum contrasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from trainbed.analysis.models.aliases import estimable_terms, partial_alias_text
from trainbed.contract.layout import BLOCK_COLUMN, coded_column


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


def _block_term(usable: pd.DataFrame) -> tuple[ModelTerm, Block] | None:
    """The block term when the runs span more than one block, else None."""
    if BLOCK_COLUMN not in usable.columns:
        return None
    values = usable[BLOCK_COLUMN].astype(int).to_numpy()
    blocks = sorted(set(values.tolist()))
    if len(blocks) < 2:
        return None
    coded = (
        np.where(values == blocks[0], -1, 1)
        if len(blocks) == 2
        else np.searchsorted(blocks, values)
    )
    columns, labels, last = _factor_columns({"name": BLOCK_COLUMN, "levels": blocks}, coded)
    term = ModelTerm(BLOCK_COLUMN, "", tuple(labels), last)
    return term, dict(zip(labels, columns, strict=True))


def _main_effects(
    usable: pd.DataFrame, factors: list[dict[str, Any]]
) -> list[tuple[ModelTerm, Block]]:
    """Main effects only, each two-level one labelled with its partial aliasing."""
    names = [f["name"] for f in factors]
    two_level = [f["name"] for f in factors if len(f["levels"]) == 2]
    x = usable[[coded_column(n) for n in two_level]].to_numpy(dtype=float)
    out = []
    for factor in factors:
        name = factor["name"]
        columns, labels, last = _factor_columns(factor, usable[coded_column(name)].to_numpy())
        aliases = (
            partial_alias_text(x, two_level, two_level.index(name)) if name in two_level else ""
        )
        out.append(
            (ModelTerm(name, aliases, tuple(labels), last), dict(zip(labels, columns, strict=True)))
        )
    assert [t.name for t, _ in out] == names
    return out


def _candidates(
    usable: pd.DataFrame, factors: list[dict[str, Any]], main_effects_only: bool = False
) -> list[tuple[ModelTerm, Block]]:
    if main_effects_only:
        return _main_effects(usable, factors)
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


def build(
    usable: pd.DataFrame, factors: list[dict[str, Any]], *, main_effects_only: bool = False
) -> DesignMatrix:
    """The model matrix over the usable runs: estimable terms only, each one full rank; the
    block term first when the runs span blocks; main effects alone when ``main_effects_only``."""
    candidates = _candidates(usable, factors, main_effects_only)
    notes: list[str] = []
    if main_effects_only:
        notes.append(
            "main effects only: this screening design aliases each main effect partially with "
            "two-factor interactions (the aliases column gives how many and how strongly), so "
            "no interaction is fitted and a large main effect may be an interaction in part"
        )
    elif not all(len(f["levels"]) == 2 for f in factors) and len(factors) > 1:
        if not any(":" in term.name for term, _ in candidates):
            notes.append("two-factor interactions left out: too few runs to estimate them")
    matrix = pd.DataFrame({"Intercept": np.ones(len(usable))}, index=usable.index)
    blocked = _block_term(usable)
    if blocked is not None:
        candidates = [blocked, *candidates]
    by_blocks = pd.concat(
        [matrix, *([pd.DataFrame(blocked[1], index=usable.index)] if blocked else [])], axis=1
    )
    rank = 1
    terms: list[ModelTerm] = []
    with_blocks: list[str] = []
    for term, block in candidates:
        trial = pd.concat([matrix, pd.DataFrame(block, index=usable.index)], axis=1)
        new_rank = int(np.linalg.matrix_rank(trial.to_numpy()))
        if new_rank == rank + len(block):
            matrix, rank = trial, new_rank
            terms.append(term)
            continue
        columns = pd.concat([by_blocks, pd.DataFrame(block, index=usable.index)], axis=1)
        if blocked is not None and np.linalg.matrix_rank(columns.to_numpy()) < columns.shape[1]:
            with_blocks.append(" = ".join([term.name, *filter(None, [term.aliases])]))
            why = "confounded with the blocks (the fold-over's block effect)"
        elif rank + len(block) > len(usable):
            why = "not enough runs left to estimate it"
        else:
            why = "confounded with earlier terms in the runs that remain"
        notes.append(f"term {term.name} not fitted: {why}")
    if blocked is not None and with_blocks and terms and terms[0].name == BLOCK_COLUMN:
        terms[0] = replace(terms[0], aliases=" = ".join(with_blocks))
    return DesignMatrix(matrix=matrix, terms=terms, notes=notes)
