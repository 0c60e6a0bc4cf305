"""What the report says about a design that is more than one regular fraction: a screening
design's partial aliasing, and fold-over blocks with the effects they separated. Pure.

- A screening (Plackett-Burman) design is fitted with main effects only
  (``design_matrix.build(main_effects_only=True)``); the design section says why, with the
  largest correlation between a main effect and a two-factor interaction.
- A design with fold-over blocks (design.csv's ``block`` column) is fitted with a block term. The
  design section names the blocks, the words they confound, and the effects the fold-over
  de-aliased: aliased with others (main effects and two-factor interactions) in the first block
  alone, clear of them in the combined design. Each response's section lists those effects with
  their estimates (:func:`dealiased_effects`).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from trainbed.analysis.models.aliases import dealiased, partial_aliases
from trainbed.contract.campaign import Campaign
from trainbed.contract.layout import BLOCK_COLUMN, coded_column

SCREENING = "screening"
#: the effects-frame columns the de-aliased table shows, where the frame has them
_ESTIMATE_COLUMNS = ("term", "q", "q_ci95_low", "q_ci95_high", "effect", "ci95_low", "ci95_high")


def is_screening(campaign: Campaign) -> bool:
    """Whether the campaign's design is a screening design (main effects only)."""
    return campaign.spec.design.type == SCREENING


def _points(trials: pd.DataFrame, names: list[str]) -> np.ndarray:
    return np.unique(trials[[coded_column(n) for n in names]].to_numpy(dtype=int), axis=0)


def _blocks(trials: pd.DataFrame) -> list[int]:
    if BLOCK_COLUMN not in trials.columns:
        return [1]
    return sorted({int(b) for b in trials[BLOCK_COLUMN].dropna()})


def screening_text(campaign: Campaign, trials: pd.DataFrame, names: list[str]) -> str:
    """The design section's paragraph on a screening design."""
    x = trials[[coded_column(n) for n in names]].to_numpy(dtype=float)
    largest = max(
        (abs(r) for i in range(len(names)) for r in partial_aliases(x, names, i).values()),
        default=0.0,
    )
    first = trials[trials[BLOCK_COLUMN] == 1] if BLOCK_COLUMN in trials.columns else trials
    runs = len(_points(first, names))
    return (
        f"\nScreening design (Plackett-Burman, {runs} runs per replicate): it has no defining "
        "relation. Each main effect is partially aliased with the two-factor interactions that "
        f"do not contain it (correlations up to |r| = {largest:.2f}), so **the model fits main "
        "effects only**, and a large main effect may be an interaction in part. Fold it over "
        "(`trainbed augment DIR --foldover full`) to clear the main effects of them.\n"
    )


def _confounded(trials: pd.DataFrame, names: list[str]) -> list[str]:
    """Products of factors (up to all of them) constant within every block but not overall."""
    blocks = [trials[trials[BLOCK_COLUMN] == b] for b in _blocks(trials)]
    pieces = [_points(block, names) for block in blocks]
    words = []
    for order in range(1, len(names) + 1):
        for combo in combinations(range(len(names)), order):
            values = [set(np.prod(p[:, list(combo)], axis=1).tolist()) for p in pieces]
            if all(len(v) == 1 for v in values) and len(set().union(*values)) > 1:
                words.append(":".join(names[i] for i in combo))
    return words


def blocks_text(campaign: Campaign, trials: pd.DataFrame, names: list[str]) -> str:
    """The design section's paragraph on fold-over blocks ('' for one block)."""
    blocks = _blocks(trials)
    if len(blocks) < 2:
        return ""
    folds = list(campaign.spec.design.foldover or [])
    stages = "; ".join(
        f"block {b}: " + ("full fold-over" if fold == "full" else f"fold-over on {fold}")
        for b, fold in zip(blocks[1:], folds, strict=False)
    )
    text = f"\n{len(blocks)} blocks ({stages}). The model has a block term, fitted first. "
    if len(names) <= 12:  # the word search enumerates 2^k products
        words = _confounded(trials, names)
        text += (
            f"Confounded with the blocks (not estimable): {', '.join(words)}.\n"
            if words
            else "No effect is confounded with the blocks.\n"
        )
    else:
        text += "\n"
    if is_screening(campaign):
        return text
    first = trials[trials[BLOCK_COLUMN] == blocks[0]]
    rows = dealiased(_points(first, names), _points(trials, names), names)
    if rows:
        text += "\nDe-aliased by the fold-over (aliased in block 1 alone, separate now):\n\n"
        text += "".join(
            f"- {effect}: was aliased with {' = '.join(freed)}"
            + (f"; still aliased with {' = '.join(still)}" if still else "")
            + "\n"
            for effect, freed, still in rows
        )
    return text


def dealiased_effects(
    campaign: Campaign, trials: pd.DataFrame, names: list[str], effects: pd.DataFrame
) -> pd.DataFrame:
    """The fitted effects the fold-over de-aliased, one row each: the term's columns from
    ``effects`` (a Fit's effects frame) and what it was aliased with. Empty for one block."""
    blocks = _blocks(trials)
    if len(blocks) < 2 or is_screening(campaign):
        return pd.DataFrame()
    first = trials[trials[BLOCK_COLUMN] == blocks[0]]
    rows = dealiased(_points(first, names), _points(trials, names), names)
    freed = {effect: " = ".join(was) for effect, was, _ in rows}
    shown = effects[effects["term"].isin(list(freed))].copy()
    shown["was_aliased_with"] = shown["term"].map(freed)
    keep = [c for c in (*_ESTIMATE_COLUMNS, "was_aliased_with") if c in shown.columns]
    return shown[keep].reset_index(drop=True)
