"""How ``trainbed plan`` shows a design: a rich table for people, one JSON object for programs.

A regular fraction shows its generators, defining relation and alias chains; a screening design
its partial aliasing (each main effect's correlations with the two-factor interactions); a design
with fold-overs its blocks and the words the blocks confound.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from trainbed.contract.campaign import Campaign
from trainbed.orchestrator.plan.design import Design


def plan_json(campaign: Campaign, design: Design) -> dict[str, Any]:
    """The ``plan --json`` object (contract keys: factors, runs, resolution, defining_relation,
    aliases)."""
    return {
        "campaign": campaign.name,
        "design": design.type,
        "fraction": design.fraction,
        "factors": dict(design.factors),
        "points": len(design.points),
        "replicates": campaign.spec.design.replicates,
        "generators": design.generators,
        "defining_relation": design.defining_relation,
        "resolution": design.resolution,
        "word_length_pattern": design.word_length_pattern,
        "aliases": design.aliases,
        "alias_structure": design.alias_structure,
        "partial_aliases": design.partial_aliases,
        "generalized_resolution": design.generalized_resolution,
        "blocks": design.blocks,
        "foldover": design.folds,
        "block_confounding": design.block_confounding,
        "runs": [
            {
                "trial_id": run.trial_id,
                "run_order": run.run_order,
                "replicate": run.replicate,
                "block": run.block,
                "coded": run.coded,
                "levels": run.levels,
            }
            for run in design.runs
        ],
    }


_ROMAN = {3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII", 8: "VIII"}


def render_plan(console: Console, campaign: Campaign, design: Design) -> None:
    letters = list(design.factors)
    table = Table(
        title=f"{campaign.name}: {design.fraction} design, {len(design.runs)} trials",
        title_justify="left",
    )
    table.add_column("run", justify="right")
    table.add_column("trial")
    table.add_column("rep", justify="right")
    if design.blocks > 1:
        table.add_column("block", justify="right")
    for letter in letters:
        table.add_column(letter, justify="right")
    for letter in letters:
        table.add_column(design.factors[letter])
    for run in design.runs:
        coded = [
            f"{run.coded[x]:+d}" if len(campaign.spec.factors[i].levels) == 2 else str(run.coded[x])
            for i, x in enumerate(letters)
        ]
        table.add_row(
            str(run.run_order),
            run.trial_id,
            str(run.replicate),
            *([str(run.block)] if design.blocks > 1 else []),
            *coded,
            *[str(run.levels[design.factors[x]]) for x in letters],
        )
    console.print(table)
    console.print(
        "factors: " + ", ".join(f"{x} = {name}" for x, name in design.factors.items()),
        highlight=False,
    )
    if design.blocks > 1:
        folds = "; ".join(
            f"block {b}: fold-over on {fold}" if fold != "full" else f"block {b}: full fold-over"
            for b, fold in enumerate(design.folds, start=2)
        )
        confounded = (
            f"; confounded with the blocks: {', '.join(design.block_confounding)}"
            if design.block_confounding
            else ""
        )
        console.print(f"blocks: {design.blocks} ({folds}){confounded}", highlight=False)
    if design.type == "screening":
        _render_screening(console, design)
    elif design.type == "fractional" and not design.defining_relation:
        console.print("combined design: a full factorial, nothing aliased", highlight=False)
    elif design.type == "fractional":
        res = design.resolution
        console.print(f"generators: {', '.join(design.generators)}", highlight=False)
        console.print(
            f"defining relation: I = {' = '.join(design.defining_relation)}", highlight=False
        )
        console.print(f"resolution: {_ROMAN.get(res or 0, res)}", highlight=False)
        aliases = Table(
            title="alias structure (main effects and 2-factor interactions)", title_justify="left"
        )
        aliases.add_column("effect")
        aliases.add_column("aliased with")
        for effect, chain in design.alias_structure.items():
            aliases.add_row(effect, " = ".join(chain))
        console.print(aliases)
    else:
        console.print("full factorial: no aliasing", highlight=False)


def _render_screening(console: Console, design: Design) -> None:
    """Partial aliasing: per main effect, its correlated two-factor interactions by value."""
    general = design.generalized_resolution
    console.print(
        f"screening design ({design.fraction}): the analysis fits main effects only; "
        f"generalized resolution {'-' if general is None else f'{general:.2f}'}",
        highlight=False,
    )
    for group in design.aliases:
        console.print(f"fully aliased: {' = '.join(group)}", highlight=False)
    table = Table(
        title="partial aliasing (correlation of each main effect with two-factor interactions)",
        title_justify="left",
    )
    table.add_column("effect")
    table.add_column("r")
    table.add_column("two-factor interactions")
    for effect, correlations in design.partial_aliases.items():
        by_value: dict[float, list[str]] = {}
        for interaction, r in correlations.items():
            by_value.setdefault(r, []).append(interaction)
        if not by_value:
            table.add_row(effect, "0", "(none)")
        for r in sorted(by_value, key=lambda v: (-abs(v), -v)):
            table.add_row(effect, f"{r:+.2f}", " ".join(by_value[r]))
            effect = ""
    console.print(table)
