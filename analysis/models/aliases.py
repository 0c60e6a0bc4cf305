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


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    scale = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / scale if scale > 0 else 0.0


def partial_aliases(x: np.ndarray, names: list[str], i: int) -> dict[str, float]:
    """Main effect ``i``'s correlations with the two-factor interactions that do not contain
    it, over the runs of ``x`` (rows in ±1 coding, one column per name); zeros left out.

    In a regular fraction each is 0 or ±1 (an alias); in a Plackett-Burman design they are
    fractions (±1/3 in 12 runs): *partial* aliasing."""
    out = {}
    for a, b in combinations(range(len(names)), 2):
        if i in (a, b):
            continue
        r = round(_correlation(x[:, i], x[:, a] * x[:, b]), 4)
        if r:
            out[f"{names[a]}:{names[b]}"] = r
    return out


def partial_alias_text(x: np.ndarray, names: list[str], i: int) -> str:
    """One line for the effects table: how many two-factor interactions main effect ``i`` is
    partially aliased with, and how strongly (``''`` when with none)."""
    found = partial_aliases(x, names, i)
    if not found:
        return ""
    sizes = sorted({abs(r) for r in found.values()})
    strength = f"|r| = {sizes[0]:.2f}" if len(sizes) == 1 else f"|r| {sizes[0]:.2f}-{sizes[-1]:.2f}"
    return f"partially aliased with {len(found)} 2FIs ({strength})"


def _low_order_sets(points: np.ndarray, names: list[str]) -> dict[str, set[str]]:
    """Each main effect and two-factor interaction -> the others of order <= 2 it is aliased
    with (empty when clear), in the design of ``points``."""
    out: dict[str, set[str]] = {}
    for term in estimable_terms(points, names):
        members = [term.factors, *term.aliases]
        low = {":".join(m) for m in members if len(m) <= 2}
        for member in low:
            out[member] = low - {member}
    return out


def dealiased(
    before: np.ndarray, after: np.ndarray, names: list[str]
) -> list[tuple[str, list[str], list[str]]]:
    """What a fold-over separated: each main effect or two-factor interaction that was aliased
    with others (of order <= 2) in the design points ``before`` and is aliased with fewer in
    ``after``, as (effect, the ones it is now clear of, the ones still aliased with it)."""
    was, now = _low_order_sets(before, names), _low_order_sets(after, names)
    out = []
    for effect, others in was.items():
        freed = others - now.get(effect, set())
        if freed:
            order = sorted(
                freed, key=lambda e: (e.count(":"), [names.index(f) for f in e.split(":")])
            )
            out.append((effect, order, sorted(now.get(effect, set()))))
    out.sort(key=lambda row: (row[0].count(":"), [names.index(f) for f in row[0].split(":")]))
    return out
