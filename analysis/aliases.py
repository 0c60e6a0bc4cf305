"""Which effects a (possibly fractional) two-level design can estimate, and their aliases.

Computed from the coded design columns themselves, so it holds for any design the results came
from: an effect's column is the product of its factors' ±1 columns over the distinct design
points, two effects are aliased when their columns are equal or opposite, and an effect whose
column is constant is aliased with the mean (a word of the defining relation). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass(frozen=True)
class Term:
    """One estimable effect: its factors, and the effects it cannot be told apart from."""

    factors: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...]
    #: per alias, +1 when its column equals this effect's and -1 when it is the opposite (a
    #: negative word such as I = -ABCD makes A = -BCD); empty means all +1
    signs: tuple[int, ...] = ()

    @property
    def name(self) -> str:
        return ":".join(self.factors)

    @property
    def alias_text(self) -> str:
        """The aliases with their signs: ``-B:C:D`` when A's column is minus B·C·D's."""
        signs = self.signs or (1,) * len(self.aliases)
        return " = ".join(
            ("-" if sign < 0 else "") + ":".join(a)
            for a, sign in zip(self.aliases, signs, strict=True)
        )


def estimable_terms(
    points: np.ndarray, names: list[str], max_order: int | None = None
) -> list[Term]:
    """Representatives of the alias sets, lowest order first (ties: factor order).

    ``points`` holds the distinct design points (rows) in ±1 coding, one column per name.
    """
    k = len(names)
    max_order = k if max_order is None else min(max_order, k)
    groups: dict[bytes, list[tuple[tuple[int, ...], int]]] = {}
    constant: set[bytes] = set()
    for order in range(1, k + 1):
        for combo in combinations(range(k), order):
            column = np.prod(points[:, list(combo)], axis=1)
            sign = 1
            if column[0] < 0:
                column, sign = -column, -1  # equal or opposite columns alias
            key = column.astype(np.int8).tobytes()
            if np.all(column == column[0]):
                constant.add(key)
                continue
            groups.setdefault(key, []).append((combo, sign))
    terms = []
    for combos in groups.values():
        # combinations() yields lower orders and factor order first
        representative, own_sign = combos[0]
        if len(representative) > max_order:
            continue
        terms.append(
            Term(
                factors=tuple(names[i] for i in representative),
                aliases=tuple(tuple(names[i] for i in c) for c, _ in combos[1:]),
                signs=tuple(sign * own_sign for _, sign in combos[1:]),
            )
        )
    terms.sort(key=lambda t: (len(t.factors), [names.index(f) for f in t.factors]))
    return terms


def defining_relation(points: np.ndarray, names: list[str]) -> list[str]:
    """The words of the defining relation: products of factors whose column is constant over
    the design points, with their sign (``I = cpu:memory:network:epochs`` reads as the word
    ``+cpu:memory:network:epochs``). Empty for a full factorial."""
    words = []
    k = len(names)
    for order in range(1, k + 1):
        for combo in combinations(range(k), order):
            column = np.prod(points[:, list(combo)], axis=1)
            if np.all(column == column[0]):
                sign = "+" if column[0] > 0 else "-"
                words.append(sign + ":".join(names[i] for i in combo))
    return words
