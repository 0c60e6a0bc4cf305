"""``trainbed confirm DIR [--runs N]``: run the recommended configuration again, and check it.

The last step of a designed experiment. The goal is ``--goal``, else the campaign's
``spec.goal``, else the one the last ``trainbed analyze --goal`` used (its report's
recommendation.json). The analysis recommends a configuration (:mod:`trainbed.analysis.
recommend`), its predictions are frozen in ``confirmation.json`` (:mod:`trainbed.contract.
confirmation`), and then it runs N times as a new block of the same results directory, as
``trainbed augment`` adds a fold-over: the same campaign spec, so the same limits, timeout and
enforcement, through the same driver and executor as ``trainbed run``.

Unlike a fold-over, the block stays out of design.csv: confirmation runs check the model, so
they must not be part of its fit (the report would then confirm a model with its own data).
Their trial IDs are keyed by the block, so they never collide with the design's. A block cut
short is continued by the next ``trainbed confirm`` rather than started again. Local backend
only for now; on Kubernetes it refuses in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainbed.contract.campaign import Campaign
from trainbed.contract.confirmation import (
    ConfirmationBlock,
    ConfirmationRecord,
    FrozenPrediction,
    read_confirmation,
    write_confirmation,
)
from trainbed.contract.errors import UserError
from trainbed.contract.goal import GoalSpec, parse_goal
from trainbed.contract.layout import RECOMMENDATION_FILE
from trainbed.contract.letters import FACTOR_LETTERS
from trainbed.contract.records import now_iso
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.plan.design import Run, trial_id
from trainbed.orchestrator.plan.parse import load_campaign
from trainbed.orchestrator.plan.trials import plan_campaign, trial_spec
from trainbed.orchestrator.results_dir import ResultsDir


def confirmation_trial_id(campaign: str, block: int, coded: dict[str, int], replicate: int) -> str:
    """A confirmation run's ID: keyed by its block as well, so no design trial shares it."""
    return trial_id(f"{campaign}|confirmation-{block}", coded, replicate)


def _goal(root: Path, given: str | None, campaign: Campaign) -> tuple[GoalSpec, str]:
    if given:
        try:
            return parse_goal(given), "from --goal"
        except ValueError as err:
            raise UserError(f"--goal: {err}") from None
    if campaign.spec.goal is not None:
        return campaign.spec.goal, "spec.goal"
    saved = ResultsDir(root).layout.report_dir / RECOMMENDATION_FILE
    if saved.is_file():
        return GoalSpec.model_validate(json.loads(saved.read_text())["goal"]), "trainbed analyze"
    raise UserError(
        f"{root}: no goal to confirm: pass --goal, set spec.goal, or run trainbed analyze "
        f'{root} --goal "min time s.t. accuracy >= 0.9" first'
    )


def _frozen_block(
    root: Path, campaign: Campaign, goal: GoalSpec, block: int, runs: int
) -> ConfirmationBlock:
    """The recommendation for ``goal`` and every fitted response's prediction there."""
    from trainbed.analysis.models.cost import cost_spec
    from trainbed.analysis.models.predict import LEVEL, coded_point, fitted_responses
    from trainbed.analysis.models.predictor import NotPredictable, Predictor
    from trainbed.analysis.models.recommend import fit_models, rank
    from trainbed.analysis.models.units import unit as unit_of
    from trainbed.analysis.reading.load import load
    from trainbed.analysis.reporting.design_notes import is_screening

    results = load(root)
    screening = is_screening(results.campaign)
    try:
        models = fit_models(goal, results.trials, results.factors, screening)
    except NotPredictable as err:
        raise UserError(f"{root}: {err}") from None
    rec = rank(goal, models, results.trials, results.factors)
    best = rec.best
    if best is None:
        raise UserError(
            f"{root}: no combination of the levels run meets {goal.text()!r} at its predicted "
            "mean, so there is nothing to confirm"
        )
    coded = coded_point(best.point)
    prices = cost_spec(results.campaign)
    frozen = []
    for response in dict.fromkeys([*goal.responses, *fitted_responses(results.trials, [])]):
        try:
            model = models.get(response) or Predictor.fit(
                results.trials, results.factors, response, main_effects_only=screening
            )
        except NotPredictable:
            continue
        estimate = model.estimate(coded)
        unit = prices.currency if response == "cost" and prices else None
        frozen.append(
            FrozenPrediction(
                response=response,
                unit=unit or unit_of(response),
                mean=estimate.mean,
                se_mean=estimate.se_mean,
                mse=model.mse,
                df=estimate.df,
                level=LEVEL,
                aliased=model.aliased_at(coded),
            )
        )
    point = {name: int(value) for name, value in coded.items() if value is not None}
    return ConfirmationBlock(
        block=block,
        goal=goal.text(),
        levels=dict(best.levels),
        coded={k: float(v) for k, v in point.items()},
        design_point=best.run,
        trial_ids=[
            confirmation_trial_id(campaign.name, block, point, r) for r in range(1, runs + 1)
        ],
        predictions=frozen,
        model_runs=next(iter(models.values())).n,
        created_at=now_iso(),
    )


def confirmation_trials(campaign: Campaign, block: ConfirmationBlock) -> list[TrialSpec]:
    """The block's TrialSpecs: the campaign's trial settings at the block's levels."""
    letters = {f.name: FACTOR_LETTERS[i] for i, f in enumerate(campaign.spec.factors)}
    coded = {letters[name]: int(value) for name, value in block.coded.items()}
    return [
        trial_spec(
            campaign,
            Run(
                trial_id=tid,
                run_order=i,
                replicate=i,
                point=-1,
                coded=coded,
                levels=dict(block.levels),
                block=block.block,
            ),
        )
        for i, tid in enumerate(block.trial_ids, start=1)
    ]


def prepare(root: Path, runs: int, goal: str | None) -> tuple[Campaign, ConfirmationBlock, str]:
    """Check the campaign is finished, then freeze a new block (or return the unfinished last
    one); writes confirmation.json. Every refusal is a UserError."""
    if runs < 1:
        raise UserError("--runs: must be at least 1")
    results = ResultsDir(root)
    spec_file = results.layout.campaign_file
    if not spec_file.is_file():
        raise UserError(
            f"{root}: not a results directory (it needs {spec_file.name}; pass DIR/<campaign>)"
        )
    campaign = load_campaign(spec_file)
    missing = [t for t in plan_campaign(campaign).trials if not results.has_result(t.trial_id)]
    if missing:
        raise UserError(
            f"{root}: {len(missing)} trials have no result yet; finish the campaign first: "
            f"trainbed run {spec_file} --out {root.parent} --resume"
        )
    record = read_confirmation(results.layout.confirmation_file) or ConfirmationRecord(
        campaign=campaign.name
    )
    if record.blocks and not all(results.has_result(t) for t in record.blocks[-1].trial_ids):
        return campaign, record.blocks[-1], "continuing the unfinished"
    chosen, _ = _goal(root, goal, campaign)
    block = _frozen_block(root, campaign, chosen, len(record.blocks) + 1, runs)
    record.blocks.append(block)
    write_confirmation(results.layout.confirmation_file, record)
    return campaign, block, "new"


def confirm_campaign(
    root: Path,
    *,
    runs: int = 3,
    goal: str | None = None,
    backend: str = "local",
    analyze: bool = True,
    allow_unenforced: bool = False,
    console: Console | None = None,
) -> int:
    """``trainbed confirm``: freeze the prediction, run the block, report. Exit code."""
    from trainbed.orchestrator.local.enforcers import trainbed_command
    from trainbed.orchestrator.run_command import drive_locally

    console = console or Console()
    if backend != "local":
        raise UserError("--backend: confirm runs locally only for now (kubernetes: not yet)")
    campaign, block, how = prepare(root, runs, goal)
    levels = ", ".join(f"{k}={v}" for k, v in block.levels.items())
    console.print(
        f"[bold]{campaign.name}[/]: {how} confirmation block {block.block}: {levels} "
        f"({'a design point' if block.design_point else 'not a design point'}), "
        f"{len(block.trial_ids)} runs, goal {block.goal!r}",
        highlight=False,
    )
    trials = confirmation_trials(campaign, block)
    results = ResultsDir(root)
    code = drive_locally(
        console,
        campaign,
        trials,
        results,
        title=f"confirmation block {block.block}, {len(trials)} trials",
        command=trainbed_command("confirm", root),
        allow_unenforced=allow_unenforced,
        interrupted="run trainbed confirm again to continue the block",
    )
    if code is not None:
        return code
    console.print(_table(root, campaign, block))
    if analyze:
        from trainbed.analysis.reporting.report import write_report

        report = write_report(root, goal=GoalSpec.model_validate(block.goal))
        console.print(f"report: {report / 'index.md'}")
    return 0


def _table(root: Path, campaign: Campaign, block: ConfirmationBlock) -> Table:
    from trainbed.analysis.reporting.confirmation_section import checks, measured_values

    measured, _ = measured_values(root, block, campaign)
    table = Table(title=f"confirmation {block.block}: predicted vs measured", title_justify="left")
    for column in ("response", "predicted", "PI of the mean", "measured mean", "runs", "inside"):
        table.add_column(column)
    for c in checks(block, measured):
        interval = "" if c.interval is None else f"[{c.interval[0]:.4g}, {c.interval[1]:.4g}]"
        inside = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[c.inside]
        measured_text = "" if c.measured is None else f"{c.measured:.4g}"
        table.add_row(
            c.response, f"{c.predicted:.4g}", interval, measured_text, str(c.runs), inside
        )
    return table
