"""The ``cost`` response against a hand computation: a 2-rank trial with a GPU per rank and a
measured energy, priced by ``spec.cost`` with OpenCost's allocation rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from trainbed.analysis.models.cost import priced_trial, rank_seconds
from trainbed.analysis.models.recommend import recommend
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.contract.cost import CostSpec
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.plan.parse import parse_campaign

PRICES = {
    "currency": "EUR",
    "cpu_hour": 0.04,
    "memory_gib_hour": 0.005,
    "gpu_hour": 2.5,
    "kwh": 0.30,
}


def _write_trial(trial_dir: Path, *, energy_j: float | None, timestamps: bool = True) -> None:
    trial_dir.mkdir(parents=True, exist_ok=True)
    spec = TrialSpec(
        campaign="c",
        trial_id=trial_dir.name,
        seed=1,
        resources=Resources(cpu="1500m", memory="6Gi", gpu=1),
        workload=Workload(parallelism=2),
    )
    (trial_dir / "trial.json").write_text(spec.model_dump_json())
    lines = [
        {"event": "start", "rank": 0, "time": "2026-01-01T10:00:00+00:00"},
        {"event": "start", "rank": 1, "time": "2026-01-01T10:00:30+00:00"},
        {"event": "stop", "rank": 1, "time": "2026-01-01T10:30:30+00:00"},  # 1800 s
        {"event": "stop", "rank": 0, "time": "2026-01-01T11:00:00+00:00"},  # 3600 s
    ]
    if timestamps:
        (trial_dir / "timestamps.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (trial_dir / "result.json").write_text(
        json.dumps(
            {"status": "succeeded", "world_size": 2, "wall_time_s": 3000.0, "energy_j": energy_j}
        )
    )


def test_two_ranks_with_a_gpu_and_measured_energy_match_the_hand_computation(
    tmp_path: Path,
) -> None:
    trial = tmp_path / "trials" / "t1"
    _write_trial(trial, energy_j=1.8e6)  # 0.5 kWh
    priced = priced_trial(trial, CostSpec(**PRICES))
    assert priced is not None
    hours = (3600 + 1800) / 3600  # rank 0 ran an hour, rank 1 half an hour: 1.5 pod-hours
    assert priced.cpu == pytest.approx(1.5 * hours * 0.04)  # 0.09
    assert priced.memory == pytest.approx(6 * hours * 0.005)  # 0.045
    assert priced.gpu == pytest.approx(1 * hours * 2.5)  # 3.75
    assert priced.energy == pytest.approx(0.5 * 0.30)  # 0.15
    assert priced.total == pytest.approx(0.09 + 0.045 + 3.75 + 0.15)


def test_unmeasured_energy_adds_nothing_and_a_missing_stop_falls_back_to_wall_time(
    tmp_path: Path,
) -> None:
    trial = tmp_path / "trials" / "t2"
    _write_trial(trial, energy_j=None, timestamps=False)
    priced = priced_trial(trial, CostSpec(**PRICES))
    assert priced is not None and priced.energy is None
    hours = 2 * 3000 / 3600  # each rank priced at the trial's wall time
    assert priced.total == pytest.approx(hours * (1.5 * 0.04 + 6 * 0.005 + 2.5))
    torn = [{"event": "start", "rank": 0, "time": "2026-01-01T10:00:00+00:00"}, {"rank": "x"}]
    assert rank_seconds(torn) == {}


def test_cost_is_a_response_of_the_loaded_trials_and_a_goal(tmp_path: Path) -> None:
    root = write_results(
        tmp_path,
        SyntheticCampaign(
            name="priced",
            factors=[("cpu", ["1", "2"]), ("batch_size", [16, 64])],
            generators={},
            replicates=2,
            effects={("cpu",): -2.0},
            write_tb=False,
            iterations=0,
        ),
    )
    layout = ResultsLayout(root)
    campaign = yaml.safe_load(layout.campaign_file.read_text())
    campaign["spec"]["cost"] = {"currency": "EUR", "cpu_hour": 3600.0}  # 1 EUR per core-second
    layout.campaign_file.write_text(yaml.safe_dump(campaign))
    results = load(root)
    for trial_id, cpu in zip(results.trials["trial_id"], results.trials["cpu"], strict=True):
        files = layout.trial(trial_id)
        spec = TrialSpec(
            campaign="c",
            trial_id=trial_id,
            seed=1,
            resources=Resources(cpu=cpu, memory="1Gi"),
            workload=Workload(),
        )
        files.spec_file.write_text(spec.model_dump_json())
    trials = load(root).trials
    # no timestamps: each of the one rank's seconds is the wall time (synthetic: time = y)
    expected = trials["time"] * trials["cpu"].astype(float)
    assert trials["cost"].to_numpy() == pytest.approx(expected.to_numpy())
    rec = recommend(root, "min cost")
    assert rec.best is not None and rec.best.predictions["cost"].unit == "EUR"


def test_spec_cost_and_goal_validate_in_the_campaign_file() -> None:
    data = yaml.safe_load(Path("experiments/quickstart.yaml").read_text())
    data["spec"]["goal"] = "min cost s.t. accuracy >= 0.95"
    data["spec"]["cost"] = PRICES
    campaign = parse_campaign(data)
    assert campaign.spec.goal is not None and campaign.spec.goal.minimize == "cost"
    assert campaign.spec.cost == CostSpec(**PRICES)
    from trainbed.contract.errors import SpecError

    data["spec"]["cost"] = {"cpu_hour": -1}
    with pytest.raises(SpecError, match="spec.cost.cpu_hour"):
        parse_campaign(data)
    data["spec"]["cost"] = PRICES
    data["spec"]["goal"] = "min speed"
    with pytest.raises(SpecError, match="spec.goal"):
        parse_campaign(data)
