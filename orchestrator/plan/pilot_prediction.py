"""The pilot's pure parts: which trials it runs, what it measures, and what it predicts.

``trainbed pilot`` runs one short trial per distinct design point (the first run of the point in
run order, capped at ``--iterations`` iterations by ``TrialSpec.pilot_iterations``). From each
it measures the iteration-time study's model, the first iteration and TMiAvg (the mean of the
remaining iterations), the validation time per epoch and the overheads around training, and
predicts every trial of the campaign:

- ``train_time_s`` (the sum of epoch train times) = first + (epochs x steps per epoch - 1) x TMiAvg;
- ``wall_time_s`` (the worker's clock) = start-up + train + epochs x (validation + epoch overhead);
- the trial's duration as the driver sees it = ``wall_time_s`` + launch (process start, imports,
  the noise guard's calibrations), and the campaign's wall time = the sum / concurrency.

A trial with an accuracy target may stop before its epoch budget, so its prediction assumes the
budget and says it is an upper bound. No I/O here: :mod:`trainbed.orchestrator.pilot_command` runs
it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from trainbed.contract.pilot import PointMeasure, TrialPrediction
from trainbed.contract.records import Result
from trainbed.contract.trial import TrialSpec, epochs_to_run
from trainbed.orchestrator.plan.design import Design, Run
from trainbed.orchestrator.plan.trials import CampaignPlan, trial_spec

PILOT_PREFIX = "pilot-"
DEFAULT_ITERATIONS = 20


@dataclass(frozen=True)
class PilotPlan:
    """The pilot's design (one run per design point) and its capped trial specs."""

    design: Design
    trials: list[TrialSpec]
    #: pilot trial ID -> the design point's index
    points: dict[str, int]


def pilot_plan(plan: CampaignPlan, iterations: int = DEFAULT_ITERATIONS) -> PilotPlan:
    """One pilot trial per distinct design point: the point's first run in run order."""
    assert iterations >= 2, "TMiAvg needs at least the first iteration and one more"
    first: dict[int, Run] = {}
    for run in plan.design.runs:
        first.setdefault(run.point, run)
    runs = [
        replace(run, trial_id=PILOT_PREFIX + run.trial_id, run_order=order, replicate=1)
        for order, run in enumerate(sorted(first.values(), key=lambda r: r.point), start=1)
    ]
    design = replace(plan.design, runs=runs)
    trials = [
        trial_spec(plan.campaign, run).model_copy(update={"pilot_iterations": iterations})
        for run in runs
    ]
    return PilotPlan(design, trials, {run.trial_id: run.point for run in runs})


def planned_epochs(trial: TrialSpec) -> int:
    """The trial's epoch budget (with a target, its ``max_epochs`` when set)."""
    target = trial.workload.target_accuracy
    return epochs_to_run(
        trial.workload.epochs, target.max_epochs if target else None, target is not None
    )


def measure_point(
    levels: dict, result: Result | None, step_times: list[float], duration_s: float | None
) -> PointMeasure:
    """The pilot trial's iteration model and overheads, from its result, rank 0's per-iteration
    ``step_s`` in order, and the driver's duration of it (start to record), all seconds."""
    trial_id = result.trial_id if result and result.trial_id else ""
    if result is None or result.status != "succeeded":
        return PointMeasure(
            levels=levels,
            pilot_trial_id=trial_id,
            status=result.status if result else "missing",
            reason=result.reason if result else "no result.json",
        )
    epochs = result.epochs
    train = sum(e.train_time_s for e in epochs)
    val = sum(e.val_time_s for e in epochs)
    test = sum(e.test_time_s or 0.0 for e in epochs)
    last_clock = epochs[-1].elapsed_s if epochs else None
    span = None if last_clock is None else last_clock + test  # training start -> last test end
    epoch_overhead = None if span is None else max(0.0, span - train - val) / len(epochs)
    startup = None
    if span is not None and result.wall_time_s is not None:
        startup = max(0.0, result.wall_time_s - span)
    launch = None
    if duration_s is not None and result.wall_time_s is not None:
        launch = max(0.0, duration_s - result.wall_time_s)
    rest = step_times[1:]
    return PointMeasure(
        levels=levels,
        pilot_trial_id=trial_id,
        status=result.status,
        iterations=len(step_times),
        steps_per_epoch=result.steps_per_epoch,
        first_iteration_s=step_times[0] if step_times else None,
        tmi_avg_s=statistics.fmean(rest) if rest else None,
        val_time_per_epoch_s=val / len(epochs) if epochs else None,
        epoch_overhead_s=epoch_overhead,
        startup_s=startup,
        launch_s=launch,
    )


def predict_trial(trial: TrialSpec, measure: PointMeasure) -> TrialPrediction:
    """One trial's train time, worker wall time and duration from its point's pilot."""
    epochs = planned_epochs(trial)
    note = (
        "upper bound: the accuracy target may stop it earlier"
        if (trial.workload.target_accuracy is not None)
        else ""
    )
    base = TrialPrediction(trial_id=trial.trial_id, levels=dict(trial.levels), epochs=epochs)
    m = measure
    if m.status != "succeeded" or m.tmi_avg_s is None or m.first_iteration_s is None:
        why = f"the pilot of this point {m.status}" + (f": {m.reason}" if m.reason else "")
        return base.model_copy(update={"note": why})
    if m.steps_per_epoch is None:
        return base.model_copy(update={"note": "the pilot did not record steps per epoch"})
    iterations = epochs * m.steps_per_epoch
    train = m.first_iteration_s + (iterations - 1) * m.tmi_avg_s
    per_epoch = (m.val_time_per_epoch_s or 0.0) + (m.epoch_overhead_s or 0.0)
    wall = (m.startup_s or 0.0) + train + epochs * per_epoch
    duration = wall + (m.launch_s or 0.0)
    return base.model_copy(
        update={
            "iterations": iterations,
            "train_time_s": train,
            "wall_time_s": wall,
            "duration_s": duration,
            "note": note,
        }
    )


def campaign_wall_time(predictions: list[TrialPrediction], concurrency: int) -> float | None:
    """The campaign's predicted wall time: trials one after another (``concurrency`` at once);
    null when any trial has no prediction (a sum that leaves some out would mislead)."""
    durations = [p.duration_s for p in predictions]
    if not durations or any(d is None for d in durations):
        return None
    return sum(d for d in durations if d is not None) / max(1, concurrency)
