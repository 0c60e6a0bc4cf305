"""``trainbed pilot FILE``: run each design point briefly, predict every trial and the campaign.

The adapter around :mod:`trainbed.orchestrator.plan.pilot_prediction`: it writes the pilot's own
results
directory (``DIR/<campaign>/pilot/``, a results directory like any other, so ``trainbed analyze``
reads it too), drives the pilot trials through the same driver and local executor as ``trainbed
run``, times each one as the driver sees it, and writes ``DIR/<campaign>/pilot.json``, where
``trainbed analyze DIR/<campaign>`` finds it after the campaign and sets predicted beside
measured.

Kubernetes: the pilot trials are ordinary TrialSpecs (``pilot_iterations`` travels in
trial.json), but reading their iteration files back needs the results volume mounted where the
pilot runs, so ``--backend kubernetes`` is refused with a clear message for now.
"""

from __future__ import annotations

import csv
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainbed.contract.errors import UserError
from trainbed.contract.layout import ResultsLayout, TrialLayout
from trainbed.contract.pilot import PilotRecord, PointMeasure, TrialPrediction, write_pilot
from trainbed.contract.records import Result, now_iso, read_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.driver import Driver, DriverEvents
from trainbed.orchestrator.local.enforcers import checked_enforcer, trainbed_command
from trainbed.orchestrator.local.executor import LocalExecutor
from trainbed.orchestrator.plan.parse import load_campaign
from trainbed.orchestrator.plan.pilot_prediction import (
    campaign_wall_time,
    measure_point,
    pilot_plan,
    predict_trial,
)
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir


def _step_times(trial_dir: Path) -> list[float]:
    """Rank 0's ``step_s`` in iteration order, from its iterations file ([] when absent)."""
    path = TrialLayout(trial_dir).iterations_file(0)
    try:
        with open(path, newline="") as handle:
            rows = sorted(csv.DictReader(handle), key=lambda r: int(r["global_step"]))
    except (OSError, KeyError, ValueError):
        return []
    return [float(r["step_s"]) for r in rows]


def run_pilot(
    file: Path,
    *,
    iterations: int,
    out: Path,
    backend: str = "local",
    parallel: int = 1,
    console: Console | None = None,
    allow_unenforced: bool = False,
) -> PilotRecord:
    """Run the pilot of ``file`` under ``out`` and return (and write) its record."""
    console = console or Console()
    if backend == "kubernetes":
        raise UserError(
            "pilot: --backend kubernetes is not supported yet (the pilot reads each trial's "
            "iteration timings, which stay on the cluster's results volume); pilot locally, "
            "on a machine like the nodes"
        )
    if backend != "local":
        raise UserError(f"--backend: must be local or kubernetes, got {backend!r}")
    if iterations < 2:
        raise UserError("--iterations: at least 2 (the first iteration, then TMiAvg's)")
    if parallel < 1:
        raise UserError("--parallel: must be at least 1")
    campaign = load_campaign(file)
    plan = plan_campaign(campaign)
    pilot = pilot_plan(plan, iterations)
    enforcer = checked_enforcer(
        [(f.name, f.target) for f in campaign.spec.factors],
        pilot.trials,
        allow_unenforced=allow_unenforced,
        command=trainbed_command("pilot", file),
    )
    layout = ResultsLayout.under(Path(out), campaign.name)
    if layout.pilot_dir.exists():
        shutil.rmtree(layout.pilot_dir)  # a pilot is rerun whole; its predictions replace
    results = ResultsDir(layout.pilot_dir)
    lock = results.lock()
    durations: dict[str, float] = {}
    begun: dict[str, float] = {}
    start = time.time()

    def started(trial: TrialSpec) -> None:
        begun[trial.trial_id] = time.time()

    def recorded(trial_id: str, result: Result) -> None:
        durations[trial_id] = time.time() - begun.get(trial_id, start)
        colour = "green" if result.status == "succeeded" else "red"
        console.print(
            f"  pilot {trial_id}: [{colour}]{result.status}[/] "
            f"({durations[trial_id]:.1f} s)"
            + (f" {result.reason}" if result.status != "succeeded" else ""),
            highlight=False,
        )

    executor = LocalExecutor(results, enforcer, allow_unenforced=allow_unenforced)
    try:
        results.initialise(campaign, pilot.design, pilot.trials, resume=False)
        console.print(
            f"[bold]{campaign.name}[/]: piloting {len(pilot.trials)} design points for "
            f"{iterations} iterations each (limits by {executor.enforcer.mode})",
            highlight=False,
        )
        driver = Driver(
            trials=pilot.trials,
            executor=executor,
            timeout_s=campaign.spec.execution.trial_timeout_s,
            events=DriverEvents(started=started, recorded=recorded),
        )
        driver.run()
    except KeyboardInterrupt:
        executor.shutdown()
        raise
    finally:
        enforcer.close()
        lock.close()

    measures: dict[int, PointMeasure] = {}
    for trial in pilot.trials:
        directory = results.trial_dir(trial.trial_id)
        measures[pilot.points[trial.trial_id]] = measure_point(
            dict(trial.levels),
            read_result(directory),
            _step_times(directory),
            durations.get(trial.trial_id),
        )
    point_of = {run.trial_id: run.point for run in plan.design.runs}
    predictions = [predict_trial(t, measures[point_of[t.trial_id]]) for t in plan.trials]
    record = PilotRecord(
        campaign=campaign.name,
        backend=backend,
        iterations=iterations,
        created_at=now_iso(),
        pilot_wall_time_s=time.time() - start,
        concurrency=parallel,
        points=[measures[p] for p in sorted(measures)],
        trials=predictions,
        campaign_wall_time_s=campaign_wall_time(predictions, parallel),
        notes=[
            "train_time_s = first iteration + (epochs x steps per epoch - 1) x TMiAvg "
            "(the iteration-time study's model); wall_time_s adds start-up, validation and "
            "epoch overhead; duration_s adds the launch (process start, imports, calibration) "
            "the driver sees"
        ],
    )
    write_pilot(layout.pilot_file, record)
    return record


def pilot_table(record: PilotRecord) -> Table:
    """The people's view: one row per design point, with its trials' predicted times."""
    by_levels: dict[str, list[TrialPrediction]] = {}
    for prediction in record.trials:
        by_levels.setdefault(_key(prediction.levels), []).append(prediction)
    table = Table(
        title=f"{record.campaign}: pilot ({record.iterations} iterations per design point)",
        title_justify="left",
    )
    for column in (
        "design point",
        "status",
        "steps/epoch",
        "first iter s",
        "TMiAvg ms",
        "val/epoch s",
        "start-up s",
        "epochs",
        "trials",
        "train s",
        "wall s",
    ):
        table.add_column(
            column, justify="left" if column in ("design point", "status") else "right"
        )
    for point in record.points:
        trials = by_levels.get(_key(point.levels), [])
        first = trials[0] if trials else None
        table.add_row(
            _key(point.levels),
            point.status,
            _fmt(point.steps_per_epoch, "{}"),
            _fmt(point.first_iteration_s, "{:.3f}"),
            _fmt(None if point.tmi_avg_s is None else point.tmi_avg_s * 1000, "{:.2f}"),
            _fmt(point.val_time_per_epoch_s, "{:.3f}"),
            _fmt(
                None if point.startup_s is None else point.startup_s + (point.launch_s or 0.0),
                "{:.1f}",
            ),
            _fmt(first.epochs if first else None, "{}"),
            str(len(trials)),
            _fmt(first.train_time_s if first else None, "{:.1f}"),
            _fmt(first.wall_time_s if first else None, "{:.1f}"),
        )
    return table


def pilot_summary(record: PilotRecord) -> str:
    total = record.campaign_wall_time_s
    head = f"{len(record.trials)} trials"
    if total is None:
        return f"{head}: no campaign wall time (a design point has no prediction; see above)"
    minutes, seconds = divmod(int(round(total)), 60)
    hours, minutes = divmod(minutes, 60)
    bound = any(p.note.startswith("upper bound") for p in record.trials)
    return (
        f"{head}, {record.concurrency} at a time: predicted campaign wall time "
        f"{hours}:{minutes:02d}:{seconds:02d} ({total:.0f} s, start-up included)"
        + (" - an upper bound: accuracy targets may stop trials earlier" if bound else "")
        + f"; the pilot took {record.pilot_wall_time_s or 0:.0f} s"
    )


def _key(levels: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in levels.items())


def _fmt(value: object, pattern: str) -> str:
    return "" if value is None else pattern.format(value)
