"""The ``trainbed`` command line: thin typer verbs over the orchestrator, worker and analysis.

Every verb maps a :class:`~trainbed.contract.errors.TrainbedError` to one red line and its
exit code (2 for the user's input), never a traceback. Output for people is a rich table; output
for programs is ``--json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from trainbed.orchestrator.cli_common import (
    NAMESPACE_HELP,
    AllowUnenforcedOption,
    AnalyzeOption,
    GoalOption,
    ParallelOption,
    QueueOption,
    app,
    console,
    friendly,
    goal_option,
    install_warning_format,
    user_path,
)


@app.command()
@friendly
def plan(
    file: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    foldover: Annotated[
        str | None,
        typer.Option(
            help="Show the combined design with this fold-over added as a block: full, or the "
            "factor (name or letter) to reverse."
        ),
    ] = None,
) -> None:
    """Show the design: runs in run order, levels, generators, defining relation, aliases."""
    from trainbed.orchestrator.plan.design import build_design
    from trainbed.orchestrator.plan.foldover import with_foldover
    from trainbed.orchestrator.plan.parse import load_campaign
    from trainbed.orchestrator.plan.view import plan_json, render_plan

    campaign = load_campaign(user_path(file))
    if foldover is not None:
        campaign = with_foldover(campaign, foldover)
    design = build_design(campaign)
    if as_json:
        sys.stdout.write(json.dumps(plan_json(campaign, design), indent=2) + "\n")
    else:
        render_plan(console, campaign, design)


@app.command()
@friendly
def schema() -> None:
    """Print the JSON Schema of the campaign file."""
    from trainbed.contract.campaign import campaign_json_schema

    sys.stdout.write(json.dumps(campaign_json_schema(), indent=2) + "\n")


@app.command()
@friendly
def run(
    file: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    backend: Annotated[str, typer.Option(help="local | kubernetes")] = "local",
    out: Annotated[Path, typer.Option(help="Results directory.")] = Path("results"),
    resume: Annotated[bool, typer.Option(help="Continue a killed run in OUT.")] = False,
    parallel: ParallelOption = 1,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help=f"{NAMESPACE_HELP} (kubernetes backend)"),
    ] = None,
    queue: QueueOption = None,
    analyze: AnalyzeOption = True,
    allow_unenforced: AllowUnenforcedOption = False,
) -> None:
    """Run the campaign to the end, then analyse it."""
    from trainbed.orchestrator.run_command import run_campaign

    code = run_campaign(
        user_path(file),
        backend=backend,
        out=user_path(out),
        resume=resume,
        parallel=parallel,
        namespace=namespace,
        queue=queue,
        analyze=analyze,
        console=console,
        allow_unenforced=allow_unenforced,
    )
    raise typer.Exit(code)


@app.command()
@friendly
def pilot(
    file: Annotated[Path, typer.Argument(help="Campaign file (YAML).")],
    iterations: Annotated[
        int, typer.Option(help="Iterations each design point trains in the pilot.")
    ] = 20,
    backend: Annotated[str, typer.Option(help="local (kubernetes: not yet)")] = "local",
    out: Annotated[Path, typer.Option(help="Results directory (pilot.json goes beside).")] = Path(
        "results"
    ),
    parallel: Annotated[
        int, typer.Option(help="Trials at once in the campaign, for its predicted wall time.")
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print pilot.json.")] = False,
    allow_unenforced: AllowUnenforcedOption = False,
) -> None:
    """Run each design point briefly; predict every trial's train time and the campaign's."""
    from trainbed.orchestrator.pilot_command import pilot_summary, pilot_table, run_pilot

    quiet = Console(stderr=True) if as_json else console
    record = run_pilot(
        user_path(file),
        iterations=iterations,
        out=user_path(out),
        backend=backend,
        parallel=parallel,
        console=quiet,
        allow_unenforced=allow_unenforced,
    )
    if as_json:
        sys.stdout.write(record.to_json() + "\n")
        return
    console.print(pilot_table(record))
    console.print(pilot_summary(record), highlight=False)


@app.command()
@friendly
def augment(
    results: Annotated[
        Path, typer.Argument(help="Results directory of one finished campaign (DIR/<campaign>).")
    ],
    foldover: Annotated[
        str,
        typer.Option(
            help="full (reverse every factor), or the factor (name or letter) to reverse."
        ),
    ] = "full",
    run_now: Annotated[
        bool, typer.Option("--run/--no-run", help="Run the new trials now (run --resume).")
    ] = True,
    parallel: ParallelOption = 1,
    analyze: AnalyzeOption = True,
    allow_unenforced: AllowUnenforcedOption = False,
) -> None:
    """Extend a finished fractional or screening campaign with a fold-over block, then run it."""
    from trainbed.orchestrator.augment import augment_campaign

    code = augment_campaign(
        user_path(results),
        foldover,
        run=run_now,
        parallel=parallel,
        analyze=analyze,
        console=console,
        allow_unenforced=allow_unenforced,
    )
    raise typer.Exit(code)


@app.command()
@friendly
def analyze(
    results: Annotated[Path, typer.Argument(help="Results directory of one campaign.")],
    out: Annotated[
        Path | None, typer.Option(help="Report folder (default RESULTS/report).")
    ] = None,
    log: Annotated[
        list[str] | None, typer.Option("--log", help="Fit log(RESPONSE); repeatable.")
    ] = None,
    tta: Annotated[
        list[float] | None,
        typer.Option("--tta", help="Extra time-to-accuracy threshold (fraction); repeatable."),
    ] = None,
    exclude_noisy: Annotated[
        bool, typer.Option("--exclude-noisy", help="Leave trials the noise guard flags out.")
    ] = False,
    covariate: Annotated[
        bool, typer.Option("--covariate", help="Also fit the calibration as a covariate.")
    ] = False,
    block: Annotated[
        str | None, typer.Option("--block", help="Also fit with this as a block: node | host.")
    ] = None,
    noise_threshold: Annotated[
        str, typer.Option(help="Calibration deviation that flags a trial, e.g. 20%.")
    ] = "20%",
    target_ci: Annotated[
        str, typer.Option(help="Advisor: wanted CI half-width of the effects, 5% or 0.5.")
    ] = "5%",
    confidence: Annotated[float, typer.Option(help="Advisor: the CI's confidence.")] = 0.95,
    pilot: Annotated[
        Path | None, typer.Option(help="pilot.json to compare with (default RESULTS/pilot.json).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the noise, advisor and prediction as JSON.")
    ] = False,
    aliased_interactions: Annotated[
        bool,
        typer.Option(
            "--aliased-interactions",
            help="Also draw interaction panels aliased with main effects (resolution III).",
        ),
    ] = False,
    goal: GoalOption = None,
) -> None:
    """Read a results directory and write the ANOVA report."""
    from trainbed.analysis.reporting.quality import QUALITY_FILE, quality_options
    from trainbed.analysis.reporting.report import write_report

    options = quality_options(
        exclude_noisy=exclude_noisy,
        covariate=covariate,
        block=block,
        noise_threshold=noise_threshold,
        target_ci=target_ci,
        confidence=confidence,
        pilot=user_path(pilot) if pilot else None,
    )
    path = write_report(
        user_path(results),
        out=user_path(out) if out else None,
        log_responses=log or [],
        tta_thresholds=tta or [],
        aliased_interactions=aliased_interactions,
        quality=options,
        goal=goal_option(goal),
    )
    if as_json:
        sys.stdout.write((path / QUALITY_FILE).read_text())
        return
    console.print(f"report: {path / 'index.md'}")


@app.command()
@friendly
def predict(
    results: Annotated[Path, typer.Argument(help="Results directory of one campaign.")],
    settings: Annotated[
        list[str] | None,
        typer.Option("--set", help="FACTOR=VALUE, repeatable; a factor not set is averaged."),
    ] = None,
    response: Annotated[
        list[str] | None, typer.Option("--response", help="Only this response; repeatable.")
    ] = None,
    level: Annotated[float, typer.Option(help="Confidence of the intervals.")] = 0.95,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Predict each response at a configuration, with confidence and prediction intervals."""
    from trainbed.contract.errors import UserError
    from trainbed.orchestrator.predict_view import render_prediction

    pairs = {}
    for item in settings or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UserError(f"--set {item}: write FACTOR=VALUE, e.g. --set cpu=1")
        pairs[name.strip()] = value.strip()
    from trainbed.analysis.models.predict import predict as _predict

    found = _predict(user_path(results), pairs, responses=response or None, level=level)
    if as_json:
        sys.stdout.write(json.dumps(found.to_json(), indent=2, default=str) + "\n")
    else:
        render_prediction(console, found)


@app.command()
@friendly
def confirm(
    results: Annotated[
        Path, typer.Argument(help="Results directory of one finished campaign (DIR/<campaign>).")
    ],
    runs: Annotated[int, typer.Option(help="Runs of the recommended configuration.")] = 3,
    goal: GoalOption = None,
    backend: Annotated[str, typer.Option(help="local (kubernetes: not yet)")] = "local",
    analyze: AnalyzeOption = True,
    allow_unenforced: AllowUnenforcedOption = False,
) -> None:
    """Run the recommended configuration again as a new block; report predicted vs measured."""
    from trainbed.orchestrator.confirm import confirm_campaign

    code = confirm_campaign(
        user_path(results),
        runs=runs,
        goal=goal,
        backend=backend,
        analyze=analyze,
        allow_unenforced=allow_unenforced,
        console=console,
    )
    raise typer.Exit(code)


@app.command()
def worker(
    spec: Annotated[Path, typer.Option("--spec", help="TRIAL.json")],
    out: Annotated[Path, typer.Option("--out", help="Trial directory.")],
) -> None:
    """Run one rank of one trial: an alias of ``python -m trainbed.worker`` (pods use it)."""
    from trainbed.worker.main import main_worker

    raise typer.Exit(main_worker(user_path(spec), user_path(out)))


from trainbed.orchestrator import cli_cluster  # noqa: E402, F401  (registers the cluster verbs)


def main() -> None:
    install_warning_format()
    app()


if __name__ == "__main__":
    main()
