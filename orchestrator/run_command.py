"""``trainbed run``: plan the campaign, drive it to the end on a backend, show progress, analyse.

The adapter between the CLI and the driver: it builds the design and the trial specs, prepares
the results directory (or resumes it), picks the executor, shows a rich progress display with an
ETA from the finished trials, prints the summary table and writes the report.
"""

from __future__ import annotations

import os
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trainbed.contract.campaign import Campaign
from trainbed.contract.env import NO_PROGRESS
from trainbed.contract.errors import UserError
from trainbed.contract.records import Result, read_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.driver import Driver, DriverEvents, Executor
from trainbed.orchestrator.local.enforcers import checked_enforcer, trainbed_command
from trainbed.orchestrator.local.executor import LocalExecutor
from trainbed.orchestrator.local.gpu_host import local_gpus, restore_pending
from trainbed.orchestrator.local.network_host import local_network
from trainbed.orchestrator.plan.parse import load_campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir


class TimingConfoundWarning(UserWarning):
    """Concurrent local trials share the machine, so their timing responses disturb each other."""


def _eta(durations: list[float], remaining: int, concurrency: int) -> str:
    if not durations or remaining <= 0:
        return "-"
    seconds = statistics.median(durations) * remaining / concurrency
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


def _levels_text(trial: TrialSpec) -> str:
    return ", ".join(f"{k}={v}" for k, v in trial.levels.items())


def summary_table(campaign: Campaign, trials: list[TrialSpec], results: ResultsDir) -> Table:
    table = Table(title=f"{campaign.name}: trials", title_justify="left")
    for column in ("run", "trial", "levels", "status", "accuracy", "time s", "tta s"):
        table.add_column(column)
    for order, trial in enumerate(trials, start=1):
        result = read_result(results.trial_dir(trial.trial_id))
        if result is None:
            table.add_row(str(order), trial.trial_id, _levels_text(trial), "missing", "", "", "")
            continue
        colour = "green" if result.status == "succeeded" else "red"
        table.add_row(
            str(order),
            trial.trial_id,
            _levels_text(trial),
            f"[{colour}]{result.status}[/]",
            _fmt(result.final_accuracy, "{:.3f}"),
            _fmt(result.wall_time_s, "{:.1f}"),
            _fmt(result.time_to_accuracy_s, "{:.1f}", "censored"),
        )
    return table


def _fmt(value: float | None, pattern: str, missing: str = "") -> str:
    return missing if value is None else pattern.format(value)


def run_campaign(
    file: Path,
    *,
    backend: str = "local",
    out: Path = Path("results"),
    resume: bool = False,
    parallel: int = 1,
    namespace: str | None = None,
    queue: str | None = None,
    analyze: bool = True,
    console: Console | None = None,
    allow_unenforced: bool = False,
) -> int:
    console = console or Console()
    if backend == "kubernetes":
        from trainbed.orchestrator.kube.verbs.commands import run_on_cluster

        collected = run_on_cluster(file, namespace=namespace, queue=queue, out=out, console=console)
        if collected is not None and analyze:
            _analyse(console, collected)
        return 0
    if backend != "local":
        raise UserError(f"--backend: must be local or kubernetes, got {backend!r}")
    if queue is not None:
        raise UserError("--queue: only the kubernetes backend queues trials (Kueue)")
    if parallel < 1:
        raise UserError("--parallel: must be at least 1")
    campaign = load_campaign(file)
    planned = plan_campaign(campaign)
    design, trials = planned.design, planned.trials
    results = ResultsDir.for_campaign(out, campaign)
    code = drive_locally(
        console,
        campaign,
        trials,
        results,
        title=f"{design.fraction} design, {len(trials)} trials",
        parallel=parallel,
        allow_unenforced=allow_unenforced,
        command=trainbed_command("run", file),
        prepare=lambda: results.initialise(campaign, design, trials, resume=resume),
    )
    if code is not None:
        return code
    console.print(summary_table(campaign, trials, results))
    if analyze:
        _analyse(console, results.root)
    return _exit_code(console, trials, results)


def drive_locally(
    console: Console,
    campaign: Campaign,
    trials: list[TrialSpec],
    results: ResultsDir,
    *,
    title: str,
    command: str,
    parallel: int = 1,
    allow_unenforced: bool = False,
    prepare: Callable[[], None] | None = None,
    interrupted: str = "continue with --resume",
) -> int | None:
    """Run ``trials`` on this machine through the one driver, with every local refusal first:
    the network it cannot shape, a level no mechanism holds as written (unless
    ``allow_unenforced``), GPUs the host lacks. ``prepare`` runs under the results lock before
    the first trial. ``run``, ``confirm`` share it, so a confirmation runs under the same limits.
    Returns 130 when interrupted, else None."""
    network = local_network(campaign, trials)  # refuses, before any trial, what it cannot shape
    enforcer = checked_enforcer(  # and what no mechanism here holds as written
        [(f.name, f.target) for f in campaign.spec.factors],
        trials,
        allow_unenforced=allow_unenforced,
        command=command,
    )
    lock = results.lock()
    executor: LocalExecutor | None = None
    gpus = None
    try:
        # under the lock (another driver's settings are its own), a killed run's GPU settings
        # first: the refusals of local_gpus read the devices' limits as they are
        for line in restore_pending(results.layout.gpu_restore_file):
            console.print(f"restored the GPU settings a killed run left: {line}", highlight=False)
        gpus = local_gpus(campaign, trials, results.layout.gpu_restore_file)  # refuses too
        if gpus is not None and parallel > 1:
            raise UserError(
                f"--parallel {parallel}: local GPU trials run one at a time (each trial's ranks "
                "take the host's GPUs from the first, with the trial's power limit and clock)"
            )
        if prepare is not None:
            prepare()
        if parallel > 1:
            message = (
                f"--parallel {parallel}: concurrent trials share this machine, so the time, "
                "throughput and time-to-accuracy responses are confounded with each other"
            )
            warnings.warn(message, TimingConfoundWarning, stacklevel=3)
            console.print(f"[yellow]warning:[/] {message}")
        executor = LocalExecutor(
            results,
            enforcer,
            network=network,
            allow_unenforced=allow_unenforced,
            gpus=gpus,
            cooldown_s=campaign.spec.execution.cooldown_s,
        )
        done_before = sum(results.has_result(t.trial_id) for t in trials)
        mode = executor.enforcer.mode
        if allow_unenforced:
            mode += " (--allow-unenforced: what did not hold is recorded as not enforced)"
        if gpus is not None:
            mode += f", GPUs per rank ({len(gpus.devices)} on this host)"
        if network is not None:
            mode += ", network by netns + tc"
            mode += f" (delay by {network.delay_by})" if network.delay_by else ""
        console.print(
            f"[bold]{campaign.name}[/]: {title} ({done_before} already recorded), "
            f"limits by {mode}, results in {results.root}",
            highlight=False,
        )
        _drive(console, campaign, trials, executor, parallel, done_before)
    except KeyboardInterrupt:
        if executor is not None:
            executor.shutdown()
        console.print(f"[yellow]interrupted[/]: {interrupted}")
        return 130
    finally:
        if executor is not None:
            executor.close()  # GPU settings back, however the run ended
        elif gpus is not None:
            gpus.restore_all()
        enforcer.close()
        lock.close()
    return None


def _exit_code(console: Console, trials: list[TrialSpec], results: ResultsDir) -> int:
    """0 when at least one trial succeeded. A campaign in which none did is an error (1): the
    summary above and the report say why each failed. Some failures alone are results (an
    out-of-memory level is an outcome of the experiment), so they do not fail the command."""
    statuses = [getattr(read_result(results.trial_dir(t.trial_id)), "status", None) for t in trials]
    if any(status == "succeeded" for status in statuses):
        failed = sum(status != "succeeded" for status in statuses)
        if failed:
            console.print(
                f"[yellow]{failed} of {len(trials)} trials did not succeed[/] (see above)"
            )
        return 0
    console.print(
        f"[bold red]error:[/] no trial of {len(trials)} succeeded; the table above and the "
        "report give each one's reason",
        highlight=False,
    )
    return 1


def _drive(
    console: Console,
    campaign: Campaign,
    trials: list[TrialSpec],
    executor: Executor,
    concurrency: int,
    done_before: int,
) -> None:
    durations: list[float] = []
    current: dict[str, tuple[TrialSpec, float]] = {}
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("{task.fields[now]}"),
        console=console,
        transient=False,
        disable=os.environ.get(NO_PROGRESS) == "1",
    )
    task = progress.add_task(
        campaign.name, total=len(trials), completed=done_before, eta="-", now=""
    )

    def refresh() -> None:
        remaining = len(trials) - int(progress.tasks[0].completed)
        now = "; ".join(f"{t.trial_id} ({_levels_text(t)})" for t, _ in current.values())
        progress.update(task, eta=_eta(durations, remaining, concurrency), now=now[:120])

    def started(trial: TrialSpec) -> None:
        current[trial.trial_id] = (trial, time.time())
        refresh()

    def recorded(trial_id: str, result: Result) -> None:
        entry = current.pop(trial_id, None)
        if entry is not None:
            durations.append(time.time() - entry[1])
        progress.advance(task)
        colour = "green" if result.status == "succeeded" else "red"
        progress.console.print(
            f"  {trial_id}: [{colour}]{result.status}[/]"
            + (f" ({result.reason})" if result.reason and result.status != "succeeded" else ""),
            highlight=False,
        )
        refresh()

    driver = Driver(
        trials=trials,
        executor=executor,
        concurrency=concurrency,
        timeout_s=campaign.spec.execution.trial_timeout_s,
        events=DriverEvents(started=started, recorded=recorded),
    )
    with progress:
        driver.run()


def _analyse(console: Console, root: Path) -> None:
    try:
        from trainbed.analysis.reporting.report import write_report
    except ImportError:
        console.print(f"analysis not available here; run: trainbed analyze {root}")
        return
    report = write_report(root, out=None, log_responses=[], tta_thresholds=[])
    console.print(f"report: {report / 'index.md'}")
