"""The design engine: a campaign spec in, an ordered table of trials out. Pure, no I/O.

pydoe builds the matrices (``fullfact`` for full factorials, ``fracfact`` for fractions, from the
user's generators or, for a requested resolution, from the minimum-aberration catalogue of
:mod:`~trainbed.orchestrator.plan.min_aberration`; Plackett-Burman screening designs come from
:mod:`~trainbed.orchestrator.plan.screening`). Everything else is computed here from the matrix
itself, never typed in: the generators, the defining relation, the resolution and the aliases
(:mod:`trainbed.orchestrator.plan.aliasing`), or a screening design's partial aliasing. Fold-overs
(:mod:`~trainbed.orchestrator.plan.foldover`) add blocks, and the structure is then that of the
combined design. Rows are keyed by their coded levels and put in standard order, so pydoe's row
order never leaks into trial IDs. A design error names the campaign file, as a schema error does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainbed.contract.campaign import Campaign, DesignSpec
from trainbed.contract.errors import DesignError
from trainbed.orchestrator.plan.aliasing import (
    LETTERS,
    Generator,
    Word,
    alias_groups,
    alias_table,
    defining_relation,
    generators_from_matrix,
    parse_generator,
    resolution,
    word_length_pattern,
)
from trainbed.orchestrator.plan.checks import and_list
from trainbed.orchestrator.plan.doe import fracfact, fullfact
from trainbed.orchestrator.plan.foldover import (
    confounded_with_blocks,
    fold,
    fold_mask,
    why_not_new,
)
from trainbed.orchestrator.plan.min_aberration import MAX_FACTORS, MIN_FACTORS, minimum_aberration
from trainbed.orchestrator.plan.screening import (
    full_aliases,
    generalized_resolution,
    partial_aliases,
    screening_matrix,
)


@dataclass(frozen=True, kw_only=True)
class Run:
    """One trial of the design: a design point and a replicate, at its place in the run order."""

    trial_id: str
    run_order: int
    replicate: int
    point: int
    coded: dict[str, int]
    levels: dict[str, Any]
    #: 1 for the design as first run; each fold-over adds the next block
    block: int = 1


@dataclass(frozen=True, kw_only=True)
class Design:
    """The expanded design with its computed structure."""

    campaign: str
    type: str
    factors: dict[str, str]
    points: list[dict[str, int]]
    runs: list[Run]
    generators: list[str] = field(default_factory=list)
    defining_relation: list[str] = field(default_factory=list)
    resolution: int | None = None
    word_length_pattern: list[int] = field(default_factory=list)
    aliases: list[list[str]] = field(default_factory=list)
    alias_structure: dict[str, list[str]] = field(default_factory=dict)
    #: screening: main effect -> two-factor interaction -> correlation (non-zero ones only)
    partial_aliases: dict[str, dict[str, float]] = field(default_factory=dict)
    #: screening: Deng & Tang's generalized resolution (3.67 for 12-run Plackett-Burman)
    generalized_resolution: float | None = None
    #: the fold of each block after the first (``full`` or a factor's name)
    folds: list[str] = field(default_factory=list)
    #: words of the first block's defining relation that are confounded with the blocks
    block_confounding: list[str] = field(default_factory=list)

    @property
    def blocks(self) -> int:
        return 1 + len(self.folds)

    @property
    def fraction(self) -> str:
        """'2^(4-1)', '2^3', '3x2' or 'Plackett-Burman 12-run' for reading; ', 2 blocks' when
        fold-overs were added."""
        k = len(self.factors)
        blocks = f", {self.blocks} blocks" if self.blocks > 1 else ""
        if self.type == "screening":
            first = sum(1 for r in self.runs if r.block == 1 and r.replicate == 1)
            return f"Plackett-Burman {first}-run{blocks}"
        if self.type == "fractional":
            p = len(self.generators)
            return (f"2^({k}-{p})" if p else f"2^{k}") + blocks
        sizes = {len({p[letter] for p in self.points}) for letter in self.factors}
        if sizes == {2}:
            return f"2^{k}"
        return "x".join(str(len({p[x] for p in self.points})) for x in self.factors)


def trial_id(campaign: str, coded: dict[str, int], replicate: int) -> str:
    """Deterministic and stable: the same campaign, point and replicate give the same ID.

    It starts with a letter so that ``<campaign>-<id>`` is a valid name for every Kubernetes kind.
    """
    key = ",".join(f"{k}={coded[k]}" for k in sorted(coded))
    digest = hashlib.sha256(f"{campaign}|{key}|r{replicate}".encode()).hexdigest()
    return "t" + digest[:10]


def _standard_order(matrix: np.ndarray) -> np.ndarray:
    """Rows sorted into Yates order (A changes fastest), whatever order pydoe produced."""
    keys = tuple(matrix[:, j] for j in range(matrix.shape[1]))  # lexsort: last key is primary
    return matrix[np.lexsort(keys)]


def _full_matrix(level_counts: list[int]) -> np.ndarray:
    """Full factorial; two-level factors coded -1/+1, others by level index 0..L-1."""
    matrix = fullfact(level_counts).astype(int)
    for j, count in enumerate(level_counts):
        if count == 2:
            matrix[:, j] = matrix[:, j] * 2 - 1
    return matrix


def _pydoe_generator_string(n: int, generators: list[Generator]) -> str:
    """The fracfact string for generators over our letters: base factors become a, b, c..."""
    generated = {g.target: g for g in generators}
    base = [i for i in range(n) if i not in generated]
    name = {factor: "abcdefghijklmnopqrstuvwxyz"[pos] for pos, factor in enumerate(base)}
    parts: list[str] = []
    for i in range(n):
        if i in generated:
            g = generated[i]
            word = "".join(name[j] for j in range(n) if g.word.mask >> j & 1)
            parts.append(("-" if g.word.sign < 0 else "") + word)
        else:
            parts.append(name[i])
    return " ".join(parts)


def _from_generators(spec: DesignSpec, n: int) -> np.ndarray:
    generators: list[Generator] = []
    for i, text in enumerate(spec.generators or []):
        try:
            generators.append(parse_generator(text, n))
        except ValueError as err:
            raise DesignError(f"spec.design.generators[{i}]", str(err)) from None
    targets = [g.target for g in generators]
    for i, g in enumerate(generators):
        if g.target in targets[:i]:
            raise DesignError(
                f"spec.design.generators[{i}]", f"{LETTERS[g.target]} is generated twice"
            )
        uses = [LETTERS[t] for t in targets if g.word.mask >> t & 1]
        if uses:
            which = "which is itself" if len(uses) == 1 else "which are themselves"
            raise DesignError(
                f"spec.design.generators[{i}]",
                f"{g.text()!r} uses {and_list(uses)}, {which} generated; "
                "write generators over the base factors only",
            )
    if len(generators) >= n:
        raise DesignError("spec.design.generators", "at least one factor must stay a base factor")
    relation = defining_relation([g.defining_word() for g in generators])
    short = [w for w in relation if w.length <= 2]
    if short:
        word = short[0]
        pair = " and ".join(LETTERS[i] for i in range(n) if word.mask >> i & 1)
        raise DesignError(
            "spec.design.generators",
            f"I = {word.name()} aliases two main effects ({pair} are confounded); "
            "choose longer generator words",
        )
    return fracfact(_pydoe_generator_string(n, generators)).astype(int)


def _relation_of(matrix: np.ndarray) -> list[Word]:
    return defining_relation([g.defining_word() for g in generators_from_matrix(matrix)])


def _from_resolution(res: int, n: int) -> np.ndarray:
    """The smallest design that reaches ``res``, of minimum aberration among those (the
    catalogue of :mod:`min_aberration`), built by pydoe from its generators."""
    if n < MIN_FACTORS:
        raise DesignError(
            "spec.design.resolution", f"a fraction needs at least 3 factors; there are {n}"
        )
    if res > n:
        raise DesignError(
            "spec.design.resolution",
            f"resolution {res} is impossible with {n} factors: a fraction of {n} two-level "
            f"factors reaches at most resolution {n}; use type: full",
        )
    if n > MAX_FACTORS:
        raise DesignError(
            "spec.design.resolution",
            f"minimum-aberration designs are catalogued for {MIN_FACTORS} to {MAX_FACTORS} "
            f"factors; with {n}, give spec.design.generators",
        )
    try:
        chosen = minimum_aberration(n, res)
    except ValueError as err:
        raise DesignError("spec.design.resolution", str(err)) from None
    generators = [
        Generator(target=chosen.base + j, word=Word(mask))
        for j, mask in enumerate(chosen.generators)
    ]
    return fracfact(_pydoe_generator_string(n, generators)).astype(int)


def build_design(campaign: Campaign) -> Design:
    """Expand a validated campaign into its runs, in run order, with its alias structure.

    A :class:`DesignError` names the campaign's file when it came from one.
    """
    try:
        return _build(campaign)
    except DesignError as err:
        if err.source is None and campaign.source is not None:
            raise DesignError(err.field, err.reason, campaign.source) from None
        raise


def _first_block(spec: DesignSpec, n: int, levels: list[int]) -> np.ndarray:
    """The design as first run: full, screening, or a fraction from generators or resolution."""
    if spec.type == "full":
        return _full_matrix(levels)
    if spec.type == "screening":
        try:
            return screening_matrix(n, spec.runs)
        except ValueError as err:
            field = "spec.design.runs" if spec.runs is not None else "spec.design.type"
            raise DesignError(field, str(err)) from None
    if spec.generators:
        return _from_generators(spec, n)
    assert spec.resolution is not None
    return _from_resolution(spec.resolution, n)


def _blocks(spec: DesignSpec, names: list[str], first: np.ndarray) -> list[np.ndarray]:
    """The first block, then one block per fold-over, each the reversal of all before it."""
    blocks = [first]
    for i, fold_name in enumerate(spec.foldover or []):
        combined = np.vstack(blocks)
        mask = fold_mask(fold_name, names)
        relation = _relation_of(combined) if spec.type == "fractional" else None
        why = why_not_new(combined, mask, relation)
        if why:
            raise DesignError(f"spec.design.foldover[{i}]", why)
        blocks.append(_standard_order(fold(combined, mask)))
    return blocks


def _structure(design_type: str, blocks: list[np.ndarray], n: int) -> dict[str, Any]:
    """What the design aliases, computed from the (combined) matrix."""
    combined = np.vstack(blocks)
    if design_type == "fractional":
        relation = _relation_of(combined)
        structure: dict[str, Any] = {
            "generators": [g.text() for g in generators_from_matrix(combined)],
            "defining_relation": [w.name() for w in relation],
            "resolution": resolution(relation),
            "word_length_pattern": word_length_pattern(relation, n),
            "aliases": alias_groups(n, relation),
            "alias_structure": alias_table(n, relation),
        }
        if len(blocks) > 1:
            structure["block_confounding"] = confounded_with_blocks(blocks, _relation_of(blocks[0]))
        return structure
    if design_type == "screening":
        general = generalized_resolution(combined)
        return {
            "resolution": int(general) if general is not None else None,
            "generalized_resolution": general,
            "aliases": full_aliases(combined),
            "partial_aliases": partial_aliases(combined),
        }
    return {}


def _build(campaign: Campaign) -> Design:
    spec = campaign.spec
    n = len(spec.factors)
    letters = LETTERS[:n]
    names = [f.name for f in spec.factors]
    first = _standard_order(_first_block(spec.design, n, [len(f.levels) for f in spec.factors]))
    blocks = _blocks(spec.design, names, first)
    structure = _structure(spec.design.type, blocks, n)
    combined = np.vstack(blocks)
    assert len({tuple(row) for row in combined}) == len(combined), "design points must be distinct"

    points = [{letters[j]: int(row[j]) for j in range(n)} for row in combined]

    def level_of(j: int, code: int) -> Any:
        levels = spec.factors[j].levels
        return levels[(code + 1) // 2] if len(levels) == 2 else levels[code]

    runs: list[Run] = []
    start = 0
    for block, matrix in enumerate(blocks, start=1):
        unordered: list[tuple[int, int]] = [
            (replicate, start + point)
            for replicate in range(1, spec.design.replicates + 1)
            for point in range(len(matrix))
        ]
        start += len(matrix)
        if spec.design.randomize:
            # block 1 keeps the order it always had; each later block has its own stream
            rng = np.random.default_rng(
                spec.design.seed if block == 1 else [spec.design.seed, block]
            )
            unordered = [unordered[i] for i in rng.permutation(len(unordered))]
        before = len(runs)
        runs += [
            Run(
                trial_id=trial_id(campaign.name, points[point], replicate),
                run_order=before + order,
                replicate=replicate,
                point=point,
                coded=dict(points[point]),
                levels={
                    f.name: level_of(j, points[point][letters[j]])
                    for j, f in enumerate(spec.factors)
                },
                block=block,
            )
            for order, (replicate, point) in enumerate(unordered, start=1)
        ]
    assert len({r.trial_id for r in runs}) == len(runs), "trial IDs must be unique"
    return Design(
        campaign=campaign.name,
        type=spec.design.type,
        factors={letters[j]: f.name for j, f in enumerate(spec.factors)},
        points=points,
        runs=runs,
        folds=list(spec.design.foldover or []),
        **structure,
    )
