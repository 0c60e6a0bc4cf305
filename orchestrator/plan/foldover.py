"""Fold-over: the second stage of a sequential experiment, as blocks of the same design. Pure.

A fraction aliases effects; folding it over separates some of them. The fold-over of a design
on a set of factors S is the same runs with the signs of S reversed. Every word of the defining
relation that holds an odd number of S's letters changes sign in the new runs, so the combined
design (old runs + fold-over) loses those words: on one factor (S = {A}), every word with A
drops out, which frees A's two-factor interactions from their aliases; the full fold-over (S =
every factor) drops the odd-length words, which frees the main effects from the two-factor
interactions of a resolution III design.

``spec.design.foldover`` lists the folds in order: ``full`` or a factor's name. Each fold
reverses the design *as it stands* (all earlier blocks), so the combined design stays a regular
fraction with half as many words and twice the runs, and the new runs form the next block. The
dropped words are confounded with the blocks: the analysis fits a block term, and those words
are not estimable. ``trainbed augment`` appends a fold to a finished campaign; ``trainbed plan
FILE --foldover FACTOR`` shows the combined design first.
"""

from __future__ import annotations

import numpy as np

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import UserError
from trainbed.orchestrator.plan.aliasing import LETTERS, Word
from trainbed.orchestrator.plan.parse import parse_campaign

#: The fold that reverses every factor.
FULL = "full"


def fold_mask(fold: str, names: list[str]) -> int:
    """The factors a fold reverses, as a bit mask; ``fold`` is ``full`` or a factor's name."""
    if fold == FULL:
        return (1 << len(names)) - 1
    return 1 << names.index(fold)


def resolve_fold(text: str, names: list[str]) -> str:
    """A fold as the user wrote it (``full``, a factor's name, or its letter) as the spec
    records it (``full`` or the name); ValueError names the choices."""
    if text == FULL or text in names:
        return text
    upper = text.upper()
    if len(text) == 1 and upper in LETTERS[: len(names)]:
        return names[LETTERS.index(upper)]
    letters = ", ".join(f"{LETTERS[i]} = {n}" for i, n in enumerate(names))
    raise ValueError(f"fold-over {text!r}: give full, a factor's name or its letter ({letters})")


def with_foldover(campaign: Campaign, text: str) -> Campaign:
    """The campaign with one more fold-over block (``text``: full, a factor's name or letter),
    validated as a file would be; a UserError names ``--foldover`` when ``text`` is neither."""
    names = [f.name for f in campaign.spec.factors]
    try:
        chosen = resolve_fold(text, names)
    except ValueError as err:
        raise UserError(f"--foldover: {err}") from None
    data = campaign.model_dump(mode="json", exclude_none=True)
    design = data["spec"].setdefault("design", {})
    design["foldover"] = [*design.get("foldover", []), chosen]
    return parse_campaign(data, campaign.source)


def fold(matrix: np.ndarray, mask: int) -> np.ndarray:
    """The runs of ``matrix`` with the columns in ``mask`` reversed."""
    signs = np.array([-1 if mask >> j & 1 else 1 for j in range(matrix.shape[1])])
    return matrix * signs


def why_not_new(existing: np.ndarray, mask: int, relation: list[Word] | None) -> str | None:
    """``None`` when folding ``existing`` on ``mask`` gives only new runs; else why not.

    For a regular fraction (``relation`` given) the fold repeats the design exactly when no
    word has an odd number of the folded letters; a non-regular design is checked run by run.
    """
    seen = {tuple(row) for row in existing}
    repeats = sum(tuple(row) in seen for row in fold(existing, mask))
    if repeats == 0:
        return None
    if relation is not None and not relation:
        return "the design is already a full factorial: there is nothing aliased to fold apart"
    if relation is not None and repeats == len(existing):
        words = " = ".join(w.name() for w in relation) or "(none)"
        if mask.bit_count() == 1:
            letter = LETTERS[mask.bit_length() - 1]
            return (
                f"folding on {letter} gives back the same runs: {letter} is in no word of the "
                f"defining relation I = {words}; fold on a factor that is"
            )
        return (
            "this fold-over gives back the same runs: every word of the defining relation "
            f"I = {words} has an even number of the reversed factors"
            + ("; fold on one factor instead" if mask.bit_count() > 1 else "")
        )
    return f"{repeats} of the fold-over's runs repeat runs the design already has"


def confounded_with_blocks(blocks: list[np.ndarray], words: list[Word]) -> list[str]:
    """The words (of the first block's defining relation) whose column is constant within each
    block but not overall: their effects cannot be told from the block effect.

    With two blocks these are exactly the words the fold-over dropped. A later fold can leave
    an earlier dropped word varying inside its new block: that word is then estimable, though
    correlated with the blocks, and the analysis's rank check handles it.
    """
    combined = np.vstack(blocks)
    out = []
    for word in words:
        columns = [j for j in range(combined.shape[1]) if word.mask >> j & 1]
        values = [set(np.prod(block[:, columns], axis=1).tolist()) for block in blocks]
        if all(len(v) == 1 for v in values) and len(set().union(*values)) > 1:
            out.append(word.name().lstrip("-"))
    return out
