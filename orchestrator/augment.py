"""``trainbed augment DIR --foldover full|FACTOR``: a finished campaign gains a fold-over block,
and only the new trials run.

The campaign's resolved spec (``DIR/campaign.yaml``) gains the fold in ``spec.design.foldover``,
so the combined design stays a pure function of that file, as every design is
(:mod:`~trainbed.orchestrator.plan.foldover`). The trials already recorded keep their IDs: an ID
is keyed by the coded levels and the replicate, and a fold-over's points are all new. design.csv
gains its ``block`` column, and ``trainbed run DIR/campaign.yaml --out PARENT --resume`` runs the
trials that have no result yet, which are exactly the new block's; the analysis then fits the
combined design with a block term.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import UserError
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.plan.design import Design
from trainbed.orchestrator.plan.foldover import with_foldover
from trainbed.orchestrator.plan.parse import load_campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

#: Designs that alias effects, so a fold-over has something to separate.
FOLDABLE = ("fractional", "screening")


@dataclass(frozen=True)
class Augmentation:
    """What ``augment`` wrote: the extended campaign, its design, and the trials still to run."""

    campaign: Campaign
    design: Design
    new_trials: list[TrialSpec]


def extend_campaign(root: Path, foldover: str) -> Augmentation:
    """Add one fold-over block to the finished campaign in ``root`` (``DIR/<campaign>``) and
    rewrite its design.csv and campaign.yaml; nothing runs. Every refusal is a UserError."""
    results = ResultsDir(root)
    spec_file = results.layout.campaign_file
    if not spec_file.is_file():
        raise UserError(
            f"{root}: not a results directory (it needs {spec_file.name}; pass DIR/<campaign>)"
        )
    campaign = load_campaign(spec_file)
    if campaign.name != root.name:
        raise UserError(
            f"{root}: holds campaign {campaign.name!r}; trainbed keeps it in a folder of that "
            "name, so rename the folder before augmenting"
        )
    kind = campaign.spec.design.type
    if kind not in FOLDABLE:
        raise UserError(
            f"{spec_file}: spec.design.type: a {kind} design aliases nothing, so there is "
            "nothing to fold over (augment extends a fractional or screening design)"
        )
    before = plan_campaign(campaign)
    missing = [t.trial_id for t in before.trials if not results.has_result(t.trial_id)]
    if missing:
        raise UserError(
            f"{root}: {len(missing)} of {len(before.trials)} trials have no result yet; finish "
            f"the campaign first: trainbed run {spec_file} --out {root.parent} --resume"
        )
    extended = with_foldover(campaign, foldover)
    after = plan_campaign(extended)
    lock = results.lock()
    try:
        new = results.extend(extended, after.design, after.trials, before.trials)
    finally:
        lock.close()
    return Augmentation(extended, after.design, new)


def augment_campaign(
    root: Path,
    foldover: str,
    *,
    run: bool = True,
    parallel: int = 1,
    analyze: bool = True,
    console: Console | None = None,
    allow_unenforced: bool = False,
) -> int:
    """``trainbed augment``: extend the campaign, say what was added, then run the new block
    with ``trainbed run … --resume`` (unless ``run`` is false). Returns the exit code."""
    from trainbed.orchestrator.run_command import run_campaign

    console = console or Console()
    done = extend_campaign(root, foldover)
    design = done.design
    fold = design.folds[-1]
    what = "a full fold-over" if fold == "full" else f"a fold-over on {fold}"
    confounded = (
        f"; the blocks confound {', '.join(design.block_confounding)}"
        if design.block_confounding
        else ""
    )
    console.print(
        f"[bold]{done.campaign.name}[/]: block {design.blocks} is {what}, "
        f"{len(done.new_trials)} new trials; the combined design is {design.fraction}"
        f"{confounded}",
        highlight=False,
    )
    spec_file = ResultsDir(root).layout.campaign_file
    if not run:
        console.print(
            f"run them with: trainbed run {spec_file} --out {root.parent} --resume",
            highlight=False,
        )
        return 0
    return run_campaign(
        spec_file,
        out=root.parent,
        resume=True,
        parallel=parallel,
        analyze=analyze,
        console=console,
        allow_unenforced=allow_unenforced,
    )
