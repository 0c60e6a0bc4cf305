"""The pilot's pure parts: one capped trial per design point, the iteration model measured from
a result, each trial's prediction, and the campaign's wall time. Table-driven, no processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainbed.contract.pilot import PilotRecord, PointMeasure, read_pilot, write_pilot
from trainbed.contract.records import EpochRecord, Result
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.pilot_prediction import (
    PILOT_PREFIX,
    campaign_wall_time,
    measure_point,
    pilot_plan,
    planned_epochs,
    predict_trial,
)
from trainbed.orchestrator.plan.trials import plan_campaign

ROOT = Path(__file__).resolve().parents[2]


def _campaign(target: dict | None = None, replicates: int = 3):
    return parse_campaign(
        {
            "apiVersion": "trainbed.io/v1alpha1",
            "kind": "Campaign",
            "metadata": {"name": "p"},
            "spec": {
                "design": {"type": "full", "replicates": replicates, "seed": 2},
                "factors": [
                    {"name": "bs", "target": "workload.batch_size", "levels": [32, 64]},
                    {"name": "cpu", "target": "resources.cpu", "levels": ["500m", "1"]},
                ],
                "trial": {
                    "workload": {
                        "dataset": "digits",
                        "epochs": 7,
                        **({"target_accuracy": target} if target else {}),
                    }
                },
            },
        }
    )


def test_one_capped_trial_per_design_point() -> None:
    plan = plan_campaign(_campaign())
    pilot = pilot_plan(plan, 25)
    assert len(plan.trials) == 12 and len(pilot.trials) == 4
    assert {t.pilot_iterations for t in pilot.trials} == {25}
    assert all(t.trial_id.startswith(PILOT_PREFIX) for t in pilot.trials)
    assert sorted(pilot.points.values()) == [0, 1, 2, 3]
    levels = {tuple(sorted(t.levels.items())) for t in pilot.trials}
    assert levels == {tuple(sorted(t.levels.items())) for t in plan.trials}
    # each pilot trial is its point's first run in run order, with that run's limits
    first = {}
    for run in plan.design.runs:
        first.setdefault(run.point, run.trial_id)
    assert {t.trial_id for t in pilot.trials} == {PILOT_PREFIX + i for i in first.values()}
    assert [r.run_order for r in pilot.design.runs] == [1, 2, 3, 4]
    by_id = {t.trial_id: t for t in plan.trials}
    for trial in pilot.trials:
        original = by_id[trial.trial_id.removeprefix(PILOT_PREFIX)]
        assert trial.resources == original.resources
        assert trial.workload == original.workload


def test_planned_epochs_with_and_without_a_target() -> None:
    plain = plan_campaign(_campaign()).trials[0]
    capped = plan_campaign(_campaign({"threshold": 0.9, "max_epochs": 11})).trials[0]
    uncapped = plan_campaign(_campaign({"threshold": 0.9})).trials[0]
    assert (planned_epochs(plain), planned_epochs(capped), planned_epochs(uncapped)) == (7, 11, 7)


def _result(**update) -> Result:
    epochs = [
        # train 1.0 + val 0.2 (test 0.1 of it); the clock at the end of validation
        EpochRecord(epoch=1, train_time_s=1.0, val_time_s=0.2, test_time_s=0.1, elapsed_s=1.15),
        EpochRecord(epoch=2, train_time_s=0.5, val_time_s=0.2, test_time_s=0.1, elapsed_s=1.9),
    ]
    fields = dict(
        trial_id="pilot-x",
        status="succeeded",
        wall_time_s=5.0,
        epochs=epochs,
        steps_per_epoch=30,
    )
    fields.update(update)
    return Result(**fields)


def test_measure_point() -> None:
    steps = [0.5] + [0.04] * 29 + [0.06] * 10  # 40 iterations
    m = measure_point({"bs": 32}, _result(), steps, duration_s=9.0)
    assert (m.status, m.iterations, m.steps_per_epoch) == ("succeeded", 40, 30)
    assert m.first_iteration_s == 0.5
    assert m.tmi_avg_s == pytest.approx((0.04 * 29 + 0.06 * 10) / 39)
    assert m.val_time_per_epoch_s == pytest.approx(0.2)
    # training start -> last test end = 1.9 + 0.2 (both tests); minus train 1.5 and val 0.4
    assert m.epoch_overhead_s == pytest.approx((2.1 - 1.5 - 0.4) / 2)
    assert m.startup_s == pytest.approx(5.0 - 2.1)
    assert m.launch_s == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("result", "status"), [(None, "missing"), (_result(status="failed", reason="x"), "failed")]
)
def test_measure_point_of_a_failed_pilot(result: Result | None, status: str) -> None:
    m = measure_point({}, result, [], None)
    assert m.status == status and m.tmi_avg_s is None


def _measure(**update) -> PointMeasure:
    fields = dict(
        levels={},
        pilot_trial_id="pilot-x",
        status="succeeded",
        steps_per_epoch=30,
        first_iteration_s=0.5,
        tmi_avg_s=0.05,
        val_time_per_epoch_s=0.2,
        epoch_overhead_s=0.01,
        startup_s=3.0,
        launch_s=4.0,
    )
    fields.update(update)
    return PointMeasure(**fields)


def test_predict_trial() -> None:
    trial = plan_campaign(_campaign()).trials[0]  # 7 epochs
    p = predict_trial(trial, _measure())
    assert p.epochs == 7 and p.iterations == 210
    assert p.train_time_s == pytest.approx(0.5 + 209 * 0.05)
    assert p.wall_time_s == pytest.approx(3.0 + p.train_time_s + 7 * 0.21)
    assert p.duration_s == pytest.approx(p.wall_time_s + 4.0)
    assert p.note == ""


def test_prediction_with_a_target_is_an_upper_bound() -> None:
    trial = plan_campaign(_campaign({"threshold": 0.9, "max_epochs": 11})).trials[0]
    p = predict_trial(trial, _measure())
    assert p.epochs == 11 and p.note.startswith("upper bound")


@pytest.mark.parametrize(
    ("measure", "note"),
    [
        (_measure(status="failed", reason="OOM", tmi_avg_s=None), "failed: OOM"),
        (_measure(steps_per_epoch=None), "steps per epoch"),
    ],
)
def test_no_prediction_without_a_model(measure: PointMeasure, note: str) -> None:
    trial = plan_campaign(_campaign()).trials[0]
    p = predict_trial(trial, measure)
    assert p.train_time_s is None and note in p.note


def test_campaign_wall_time() -> None:
    trials = plan_campaign(_campaign()).trials
    good = [predict_trial(t, _measure()) for t in trials[:4]]
    assert campaign_wall_time(good, 1) == pytest.approx(sum(p.duration_s for p in good))
    assert campaign_wall_time(good, 2) == pytest.approx(sum(p.duration_s for p in good) / 2)
    bad = good + [predict_trial(trials[4], _measure(steps_per_epoch=None))]
    assert campaign_wall_time(bad, 1) is None
    assert campaign_wall_time([], 1) is None


def test_pilot_json_round_trip(tmp_path: Path) -> None:
    trials = plan_campaign(_campaign()).trials
    record = PilotRecord(
        campaign="p",
        iterations=20,
        points=[_measure()],
        trials=[predict_trial(trials[0], _measure())],
    )
    write_pilot(tmp_path / "pilot.json", record)
    back = read_pilot(tmp_path / "pilot.json")
    assert back == record
    assert '"schema": "trainbed.io/pilot/v1"' in (tmp_path / "pilot.json").read_text()
    assert read_pilot(tmp_path / "missing.json") is None
