"""Screening designs: Plackett-Burman matrices for many two-level factors, and their partial
aliasing. Pure.

A Plackett-Burman (PB) design of N runs (N a multiple of 4) holds up to N - 1 two-level factors
and estimates every main effect orthogonally, but it is not a regular fraction: a two-factor
interaction is not aliased with one main effect in full, it is *partially* aliased with many of
them. So the design has no defining relation, and its alias structure is the correlation of each
main effect's column with each two-factor interaction's column (+-1/3 for 12 runs; +-0.2 and +-0.6
for 20). A large main effect in a screening run may therefore be an interaction in part; the
analysis fits main effects only and says so.

Where the matrices come from:

- 12 and 20 runs: pydoe's ``pbdesign`` (its first N - 1 columns; the first k for k factors),
  loaded through :mod:`~trainbed.orchestrator.plan.doe`, which needs scipy.linalg.
- 24 runs: the cyclic design of Plackett & Burman (1946), "The design of optimum multifactorial
  experiments", Biometrika 33(4), 305-325, from its published first row. pydoe's 24-run matrix
  is the 12-run Hadamard matrix doubled (Sylvester), whose columns 13..23 are column 12 times
  columns 1..11: there, main effects are *fully* aliased with two-factor interactions. The
  cyclic design keeps every such correlation within +-1/3 (tests/unit/test_screening.py checks
  both).

A factor count for which the first k columns repeat a row (k < 5 in 12 or 20 runs, k < 12 in
24) is refused: a repeated row would be a replicate, not a design point.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from trainbed.orchestrator.plan.aliasing import effect_name
from trainbed.orchestrator.plan.doe import pbdesign

#: The run sizes offered: Plackett-Burman designs that are not powers of two (8, 16 and 32 runs
#: are regular fractions, which ``type: fractional`` already gives with a defining relation).
PB_RUNS: tuple[int, ...] = (12, 20, 24)
#: Plackett & Burman (1946), N = 24: the first row; rows 2..23 are its cyclic shifts, and row 24
#: is all minus.
_PB24_FIRST_ROW = "+++++-+-++--++--+-+----"


def _pb24() -> np.ndarray:
    row = np.array([1 if c == "+" else -1 for c in _PB24_FIRST_ROW])
    assert len(row) == 23
    return np.vstack([np.roll(row, i) for i in range(23)] + [-np.ones(23, dtype=int)])


def _distinct(matrix: np.ndarray) -> bool:
    return len({tuple(row) for row in matrix}) == len(matrix)


def fits(runs: int, factors: int) -> bool:
    """Whether ``factors`` columns of the ``runs``-run design give distinct points."""
    return factors <= runs - 1 and _distinct(pb_matrix(runs)[:, :factors])


def default_runs(factors: int) -> int | None:
    """The smallest offered run size whose design holds ``factors`` distinct points."""
    return next((runs for runs in PB_RUNS if fits(runs, factors)), None)


def pb_matrix(runs: int) -> np.ndarray:
    """The ``runs`` x (``runs`` - 1) Plackett-Burman matrix of -1/+1 (integers)."""
    assert runs in PB_RUNS, runs
    if runs == 24:
        return _pb24()
    return np.asarray(pbdesign(runs - 1)).astype(int)


def screening_matrix(factors: int, runs: int | None) -> np.ndarray:
    """The first ``factors`` columns of the PB design of ``runs`` (default: the smallest that
    fits); raises ValueError saying which sizes would do."""
    chosen = runs if runs is not None else default_runs(factors)
    if chosen is None or not fits(chosen, factors):
        sizes = [r for r in PB_RUNS if fits(r, factors)]
        if not sizes:
            raise ValueError(
                f"no Plackett-Burman design of {', '.join(map(str, PB_RUNS))} runs holds "
                f"{factors} factors as distinct points (it takes 5 to 23); use type: fractional"
            )
        raise ValueError(
            f"{factors} factors need a screening design of "
            f"{' or '.join(map(str, sizes))} runs, not {chosen}"
        )
    return pb_matrix(chosen)[:, :factors]


def partial_aliases(matrix: np.ndarray, digits: int = 4) -> dict[str, dict[str, float]]:
    """Each main effect (by letter) -> every two-factor interaction whose column is correlated
    with it (by name) -> the correlation, rounded; zeros are left out.

    Columns are balanced (each level in half the runs), so the correlation of x_i with x_j·x_k is
    their mean product. A main effect is orthogonal to the interactions it is part of.
    """
    runs, k = matrix.shape
    x = matrix.astype(float)
    out: dict[str, dict[str, float]] = {}
    for i in range(k):
        row: dict[str, float] = {}
        for a, b in combinations(range(k), 2):
            if i in (a, b):
                continue
            r = round(float(x[:, i] @ (x[:, a] * x[:, b])) / runs, digits)
            if r:
                row[effect_name(1 << a | 1 << b)] = r
        out[effect_name(1 << i)] = row
    return out


def full_aliases(matrix: np.ndarray) -> list[list[str]]:
    """Groups of main effects and two-factor interactions whose columns are equal or opposite
    (complete aliasing), as :func:`aliasing.alias_groups` lists them for regular designs."""
    k = matrix.shape[1]
    masks = [1 << i for i in range(k)] + [1 << a | 1 << b for a, b in combinations(range(k), 2)]
    groups: dict[bytes, list[int]] = {}
    for mask in masks:
        column = np.prod(matrix[:, [i for i in range(k) if mask >> i & 1]], axis=1)
        if column[0] < 0:
            column = -column
        groups.setdefault(column.astype(np.int8).tobytes(), []).append(mask)
    return [[effect_name(m) for m in group] for group in groups.values() if len(group) > 1]


def generalized_resolution(matrix: np.ndarray, longest: int = 6) -> float | None:
    """Deng & Tang's generalized resolution: r + 1 - max|J_r|/N, where r is the length of the
    shortest word whose column sum J is non-zero. A regular design of resolution R gives R
    exactly; 12-run Plackett-Burman gives 3.67 (main effects never fully aliased with a 2FI).
    ``None`` when no word up to ``longest`` letters has a non-zero sum."""
    runs, k = matrix.shape
    for length in range(1, min(k, longest) + 1):
        sums = [
            abs(int(np.prod(matrix[:, list(combo)], axis=1).sum()))
            for combo in combinations(range(k), length)
        ]
        if max(sums) > 0:
            return round(length + 1 - max(sums) / runs, 4)
    return None
