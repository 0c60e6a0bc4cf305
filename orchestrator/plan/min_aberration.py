"""Exact minimum-aberration regular two-level fractions for a requested resolution. Pure.

Why not pydoe: ``fracfact_by_res`` builds *a* design of the resolution, and ``fracfact_opt``
ranks designs by its own alias cost (with bounded attempts above 8 factors), so neither is minimum
aberration (MA) in general; at 9 and 12 factors they even stop at resolution V where VI fits in
the same runs.

What is exact here: a 2^(k-p) design is ``m = k - p`` base factors (a full factorial in 2^m runs)
plus ``p`` generated factors, each the product of the base factors in its bit mask. Relabelling
factors changes nothing that matters, so every design can be written this way, and its defining
relation, resolution and word-length pattern (WLP) follow from :mod:`aliasing`. The MA design of
``k`` factors in ``2^m`` runs has the lexicographically smallest WLP (A3, A4, ...); its resolution
is therefore the largest any design of that size reaches, so the smallest design reaching
resolution R is at the smallest ``m`` whose MA design reaches R, and it is that MA design.

:func:`search_minimum_aberration` finds the MA generators by an exhaustive branch and bound (one
generator column at a time, in a fixed column order, pruning on the partial WLP). It is exact but
takes seconds for 12 factors, so the answers for 3..12 factors and up to 256 runs are precomputed
by ``benchmarks/ma_catalog.py`` into :mod:`min_aberration_catalog`, and :func:`minimum_aberration`
is a table look-up. The tests recompute the cheap cases and compare every entry with the published
MA catalogues (Chen, Sun & Wu 1993; Xu 2009).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from trainbed.orchestrator.plan.aliasing import (
    LETTERS,
    Word,
    defining_relation,
    effect_name,
    resolution,
    word_length_pattern,
)
from trainbed.orchestrator.plan.min_aberration_catalog import CATALOG

#: The largest run count looked at: 2^8. Campaigns of trials are expensive; beyond 256 runs a
#: person should choose the design on purpose rather than by resolution.
MAX_RUNS = 256
MAX_BASE = MAX_RUNS.bit_length() - 1
#: Factor counts the shipped catalogue covers (every base size 2^m <= MAX_RUNS with p >= 1).
MIN_FACTORS, MAX_FACTORS = 3, 12


@dataclass(frozen=True)
class MADesign:
    """A regular 2^(k-p) fraction: factors A.. are the base, the rest are generated.

    ``generators[j]`` is a bit mask over the ``base`` factors (bit i = letter A+i): generated
    factor ``base + j`` is the product of those base columns, i.e. the design's defining
    relation is spanned by the words ``mask | 1 << (base + j)``.
    """

    factors: int
    runs: int
    base: int
    generators: tuple[int, ...]
    #: (A3, A4, ..., Ak): how many defining words have each length; MA minimises it left to right.
    word_length_pattern: tuple[int, ...]
    resolution: int

    def defining_words(self) -> list[Word]:
        """The generator words I = ABC..X, one per generated factor."""
        return [Word(mask | 1 << (self.base + j)) for j, mask in enumerate(self.generators)]

    def generator_texts(self) -> list[str]:
        """Generators as a campaign file writes them, e.g. ``["J = ABCDEFG", ...]``."""
        return [
            f"{LETTERS[self.base + j]} = {effect_name(mask)}"
            for j, mask in enumerate(self.generators)
        ]

    def matrix(self) -> np.ndarray:
        """The runs x factors matrix of -1/+1 in Yates order (A changes fastest, first row -1)."""
        rows = np.arange(self.runs)
        base = np.stack([(rows >> i & 1) * 2 - 1 for i in range(self.base)], axis=1)
        generated = [np.prod(base[:, _bits(mask)], axis=1) for mask in self.generators]
        return np.column_stack([base, *generated]).astype(int)


def _bits(mask: int) -> list[int]:
    return [i for i in range(mask.bit_length()) if mask >> i & 1]


def design_of(factors: int, base: int, generators: tuple[int, ...]) -> MADesign:
    """Wrap generator masks as an :class:`MADesign`, computing its structure with aliasing.py."""
    if len(generators) != factors - base:
        raise ValueError(f"{factors} factors on {base} base factors need {factors - base} masks")
    words = [Word(mask | 1 << (base + j)) for j, mask in enumerate(generators)]
    relation = defining_relation(words)  # independent: word j alone holds letter base + j
    reached = resolution(relation) or factors + 1
    if reached < 3:
        raise ValueError(f"generators {generators} alias two main effects")
    wlp = word_length_pattern(relation, factors)[2:]
    return MADesign(factors, 1 << base, base, tuple(generators), tuple(wlp), reached)


@cache
def _catalog_design(factors: int, base: int) -> MADesign:
    return design_of(factors, base, CATALOG[factors, base])


def _check(factors: int, wanted: int) -> None:
    if not MIN_FACTORS <= factors <= MAX_FACTORS:
        raise ValueError(
            f"minimum-aberration designs are catalogued for {MIN_FACTORS} to {MAX_FACTORS} "
            f"factors; there are {factors}"
        )
    if wanted < 3:
        raise ValueError(f"resolution {wanted} aliases main effects; ask for 3 or more")
    if wanted > factors:
        raise ValueError(
            f"resolution {wanted} is impossible with {factors} factors: a fraction of {factors} "
            f"two-level factors reaches at most resolution {factors}"
        )


def minimum_aberration(k: int, resolution: int) -> MADesign:
    """The MA design among the smallest regular fractions of ``k`` factors reaching ``resolution``.

    Raises ValueError when ``k`` is outside the catalogue, the resolution is below III or above
    ``k``, or no fraction of at most :data:`MAX_RUNS` runs reaches it.
    """
    _check(k, resolution)
    smallest = max(2, k.bit_length())  # 2^m - 1 >= k columns are needed even for III
    for base in range(smallest, min(k - 1, MAX_BASE) + 1):
        design = _catalog_design(k, base)
        if design.resolution >= resolution:
            return design
    raise ValueError(
        f"no regular fraction of {k} factors with at most {MAX_RUNS} runs reaches "
        f"resolution {resolution}"
    )


def smallest_runs(k: int, resolution: int) -> int:
    """The fewest runs 2^(k-p) of a regular fraction of ``k`` factors and resolution >= R."""
    return minimum_aberration(k, resolution).runs


def search_minimum_aberration(
    factors: int, base: int, min_resolution: int = 3
) -> tuple[int, ...] | None:
    """Exhaustive branch and bound: the MA generator masks of ``factors`` in 2^``base`` runs.

    Only designs of resolution >= ``min_resolution`` are considered; ``None`` means none exists,
    which is how the tests prove that no smaller design reaches a resolution.

    Exactness rests on three facts. (1) Every design is a set of distinct generator columns
    (masks of weight >= 2) over some base, and permuting the base letters keeps its WLP; so we
    may map a column of the largest weight W onto A..(W-th letter). Candidates are taken in the
    order (weight descending, mask ascending), in which that column 2^W - 1 comes first: each
    orbit is visited with ``first = 2^W - 1`` and the others after it. (2) Adding a generator
    only adds words, and leaves the existing words' lengths alone, so the full WLP is >= the
    partial WLP entry by entry; then a partial WLP lexicographically above the best complete one
    can never win, and the branch is cut. (3) Words shorter than ``min_resolution`` only grow in
    number, so a branch with one is cut too.
    """
    extra = factors - base
    if extra < 1 or (1 << base) - 1 - base < extra:
        raise ValueError(f"no 2^({factors}-{extra}) design: base {base} is too small or too big")
    least = max(2, min_resolution - 1)
    columns = sorted(
        (c for c in range(1, 1 << base) if c.bit_count() >= least),
        key=lambda c: (-c.bit_count(), c),
    )
    best: list[tuple[int, ...] | None] = [None, None]  # [wlp, generators]

    def grow(chosen: list[int], words: list[tuple[int, int]], wlp: list[int], start: int) -> None:
        need = extra - len(chosen)
        if need == 0:
            best[0], best[1] = tuple(wlp), tuple(sorted(chosen))
            return
        for i in range(start, len(columns) - need + 1):
            column = columns[i]
            new_words = [(mask ^ column, count + 1) for mask, count in words]
            pattern = wlp[:]
            for mask, count in new_words:
                pattern[mask.bit_count() + count] += 1
            if any(pattern[:min_resolution]):
                continue
            if best[0] is not None and tuple(pattern) >= best[0]:
                continue  # ties cannot win either: another generator adds at least one word
            grow([*chosen, column], words + new_words, pattern, i + 1)

    for weight in range(base, least - 1, -1):
        first = (1 << weight) - 1
        pattern = [0] * (factors + 1)
        pattern[weight + 1] = 1
        if best[0] is not None and tuple(pattern) >= best[0]:
            continue
        grow([first], [(0, 0), (first, 1)], pattern, columns.index(first) + 1)
    return best[1]
