"""Two-level fractional-factorial algebra over GF(2): words, defining relations, aliases.

An effect is a bit mask over the factors (bit i = letter A+i) and a sign. Multiplying effects is
XOR of masks, so the defining relation is the group the generator words span, the resolution is
its shortest word, and an effect's aliases are the effect times each word. Everything here is
pure and works from numbers, so the design engine can derive (and cross-check) the structure from
whatever matrix pydoe returns rather than trusting its row or column conventions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from trainbed.contract.letters import FACTOR_LETTERS, IDENTITY

#: Factor letters: A.. in factor order, skipping I (the identity), as FrF2 does.
LETTERS = FACTOR_LETTERS
_GENERATOR = re.compile(r"^\s*([A-Za-z])\s*=\s*([+-]?)\s*([A-Za-z]+)\s*$")


@dataclass(frozen=True)
class Word:
    """A signed product of factors, e.g. -ABD: ``mask`` has bits A, B, D and ``sign`` is -1."""

    mask: int
    sign: int = 1

    def __mul__(self, other: Word) -> Word:
        return Word(self.mask ^ other.mask, self.sign * other.sign)

    @property
    def length(self) -> int:
        return self.mask.bit_count()

    def name(self) -> str:
        return ("-" if self.sign < 0 else "") + effect_name(self.mask)


def effect_name(mask: int) -> str:
    """Letters of a mask in alphabetical order; the identity is ``I``."""
    letters = "".join(LETTERS[i] for i in range(mask.bit_length()) if mask >> i & 1)
    return letters or IDENTITY


def mask_of(letters: str) -> int:
    """The bit mask of a word such as ``"ABD"``; raises ValueError for a letter that names no
    factor (``I`` is the identity, never a factor)."""
    mask = 0
    for ch in letters.upper():
        if ch not in LETTERS:
            raise ValueError(f"{ch} is not a factor letter (A-Z without I)")
        bit = 1 << LETTERS.index(ch)
        if mask & bit:
            raise ValueError(f"letter {ch} appears twice in {letters!r}")
        mask |= bit
    return mask


@dataclass(frozen=True)
class Generator:
    """``target = sign * word``: the generated factor's column is the product of the word's."""

    target: int
    word: Word

    def defining_word(self) -> Word:
        """The word of the defining relation this generator contributes: I = target * word."""
        return Word(self.word.mask | (1 << self.target), self.word.sign)

    def text(self) -> str:
        return f"{LETTERS[self.target]} = {self.word.name()}"


def parse_generator(text: str, n_factors: int) -> Generator:
    """Parse ``"D = ABC"`` or ``"E = -ABD"``; raises ValueError naming what is wrong."""
    match = _GENERATOR.match(text)
    if not match:
        raise ValueError(f"{text!r} is not of the form 'D = ABC'")
    target, sign, word = match.group(1).upper(), match.group(2), match.group(3).upper()
    known = LETTERS[:n_factors]
    for ch in target + word:
        if ch == IDENTITY:
            raise ValueError(
                f"{text!r} names I, the identity: factor letters skip I, so the ninth factor is J"
            )
        if ch not in known:
            raise ValueError(f"{text!r} names {ch}, but the factors are {', '.join(known)}")
    try:
        mask = mask_of(word)
    except ValueError as err:
        raise ValueError(f"{text!r}: {err}") from None
    index = LETTERS.index(target)
    if mask >> index & 1:
        raise ValueError(f"{text!r} defines {target} in terms of itself")
    return Generator(index, Word(mask, -1 if sign == "-" else 1))


def defining_relation(words: list[Word]) -> list[Word]:
    """Every non-identity word of the group the generator words span, shortest first."""
    group: dict[int, Word] = {0: Word(0, 1)}
    for word in words:
        for existing in list(group.values()):
            product = existing * word
            group.setdefault(product.mask, product)
    relation = [w for mask, w in group.items() if mask]
    return sorted(relation, key=lambda w: (w.length, effect_name(w.mask)))


def resolution(relation: list[Word]) -> int | None:
    """Length of the shortest word; ``None`` for a full factorial (no words)."""
    return min((w.length for w in relation), default=None)


def word_length_pattern(relation: list[Word], n_factors: int) -> list[int]:
    """Counts of words of length 1..n: the aberration criterion compares these left to right."""
    counts = [0] * (n_factors + 1)
    for word in relation:
        counts[word.length] += 1
    return counts[1:]


def effects_up_to(n_factors: int, order: int) -> list[int]:
    """Masks of all main effects and interactions up to ``order``, in the usual reading order."""
    masks: list[int] = []
    for k in range(1, order + 1):
        for combo in combinations(range(n_factors), k):
            masks.append(sum(1 << i for i in combo))
    return masks


def aliases_of(mask: int, relation: list[Word]) -> list[Word]:
    """The effects confounded with ``mask``, shortest first."""
    found = [Word(mask, 1) * word for word in relation]
    return sorted(found, key=lambda w: (w.length, effect_name(w.mask)))


def alias_groups(n_factors: int, relation: list[Word], order: int = 2) -> list[list[str]]:
    """Groups of main effects and two-factor interactions confounded with each other.

    Only the groups with two or more low-order members are listed, e.g. ``[["AB", "CD"]]`` for
    I = ABCD; the full chains (with three-factor and higher terms) come from :func:`alias_table`.
    """
    low = effects_up_to(n_factors, order)
    low_set = set(low)
    seen: set[int] = set()
    groups: list[list[str]] = []
    for mask in low:
        if mask in seen:
            continue
        members = [mask] + [w.mask for w in aliases_of(mask, relation) if w.mask in low_set]
        seen.update(members)
        if len(members) > 1:
            members.sort(key=lambda m: (m.bit_count(), effect_name(m)))
            groups.append([effect_name(m) for m in members])
    return groups


def alias_table(n_factors: int, relation: list[Word], order: int = 2) -> dict[str, list[str]]:
    """Every main effect and two-factor interaction with all its aliases (signed names)."""
    return {
        effect_name(mask): [w.name() for w in aliases_of(mask, relation)]
        for mask in effects_up_to(n_factors, order)
    }


def generators_from_matrix(matrix: np.ndarray) -> list[Generator]:
    """Recover generators from a regular two-level design matrix (rows x factors of +/-1).

    A column's bits are 1 where it is -1, so a product of columns is the XOR of their bits and a
    sign flip is the XOR with the all-ones vector. Gaussian elimination over GF(2) picks the base
    columns and writes every other column as a signed product of them.
    """
    rows, n = matrix.shape
    assert set(np.unique(matrix)) <= {-1.0, 1.0}, "a two-level design has entries +/-1"
    vectors = [int("".join("1" if v < 0 else "0" for v in matrix[:, j]), 2) for j in range(n)]
    ones = (1 << rows) - 1
    # basis: pivot bit -> (vector, combination mask over columns, sign flag)
    basis: dict[int, tuple[int, int, int]] = {}
    sign_pivot = ones.bit_length() - 1
    basis[sign_pivot] = (ones, 0, 1)
    generators: list[Generator] = []
    for j, vec in enumerate(vectors):
        combo, flip = 0, 0
        reduced = vec
        while reduced:
            pivot = reduced.bit_length() - 1
            if pivot not in basis:
                break
            bvec, bcombo, bflip = basis[pivot]
            reduced ^= bvec
            combo ^= bcombo
            flip ^= bflip
        if reduced:
            basis[reduced.bit_length() - 1] = (reduced, combo ^ (1 << j), flip)
        else:
            # vec = XOR of base columns in combo (xor ones if flip): column j = (-1)^flip * prod
            generators.append(Generator(j, Word(combo, -1 if flip else 1)))
    return generators
