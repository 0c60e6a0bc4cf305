"""A synthetic 2^3 GPU campaign (power limit × batch size × model) with censored runs: the
energy-to-accuracy effects come out as planted, and the Pareto set is the one computed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from trainbed.analysis.models.pareto import Objective, pareto_set
from trainbed.analysis.models.tradeoff import model_estimates, run_estimates
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic_gpu import SyntheticGpuCampaign, write_gpu_results
from trainbed.analysis.reporting.report import write_report

P, B, M = ("gpu_power_limit",), ("batch_size",), ("model",)
TIME = {P: -25.0, B: -15.0, M: 30.0}  # s: 120 - 25P - 15B + 30M
ENERGY = {P: 3000.0, B: -1500.0, M: 6000.0}  # J: 20000 + 3000P - 1500B + 6000M
# By hand, per design point (first factor fastest), time s / energy J:
#   p1 (200, 64, r18) 130 / 12500    p5 (200, 64, r50) 190 / 24500
#   p2 (700, 64, r18)  80 / 18500    p6 (700, 64, r50) 140 / 30500
#   p3 (200, 256, r18) 100 / 9500    p7 (200, 256, r50) 160 / 21500
#   p4 (700, 256, r18)  50 / 15500   p8 (700, 256, r50) 110 / 27500
# Minimising both: p3 (least energy) and p4 (fastest) dominate every other point. With p4
# censored (a run missed the target), p2 is no longer dominated (only p4 beat it): {p2, p3}.
BY_HAND = ["p3", "p4"]
BY_HAND_P4_CENSORED = ["p2", "p3"]
CENSORED_RUNS = [(3, 1), (6, 2)]  # (point index, replicate): p4 and p7 miss once each
OBJECTIVES = [Objective.of("time_to_accuracy"), Objective.of("energy_to_accuracy")]


def spec(censored: list[tuple[int, int]], **kwargs: object) -> SyntheticGpuCampaign:
    return SyntheticGpuCampaign(
        time_effects=TIME, energy_effects=ENERGY, censored=censored, seed=3, **kwargs
    )


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_gpu_results(tmp_path_factory.mktemp("gpu"), spec(CENSORED_RUNS))
    return write_report(root)


def test_energy_to_accuracy_effects_come_out_as_planted(report: Path) -> None:
    effects = pd.read_csv(report / "effects_energy_to_accuracy.csv").set_index("term")
    assert effects.at["mean", "q"] == pytest.approx(20000, abs=150)
    for term, q in ENERGY.items():
        row = effects.loc[term[0]]
        assert row["q_ci95_low"] <= q <= row["q_ci95_high"], (term, row)
        assert row["q"] == pytest.approx(q, abs=150)
    for term in ("gpu_power_limit:batch_size", "gpu_power_limit:model", "batch_size:model"):
        assert abs(effects.at[term, "q"]) < 150  # nothing planted: noise sd 200 J over 22 runs
    assert (effects["unit"] == "J").all()
    text = (report / "index.md").read_text()
    assert "2 of 24 succeeded runs with an energy meter never reached the target" in text
    assert "their energy-to-accuracy is censored" in text
    assert "Fitted on 22 of 24 runs; left out: " in text


def test_pareto_set_equals_the_one_by_hand(report: Path) -> None:
    table = pd.read_csv(report / "pareto.csv").set_index("point")
    assert table.loc["p2", ["gpu_power_limit", "batch_size", "model"]].tolist() == [
        700,
        64,
        "resnet18",
    ]
    assert table.loc["p4", "time_to_accuracy_runs_censored_runs"] == 1
    assert list(table.index[table["status_runs"] == "optimal"]) == BY_HAND_P4_CENSORED
    assert list(table.index[table["status_model"] == "optimal"]) == BY_HAND_P4_CENSORED
    assert list(table.index[table["status_runs"] == "censored"]) == ["p4", "p7"]
    assert table.at["p1", "dominated_by_runs"] == "p3"
    text = (report / "index.md").read_text()
    assert (
        "**Pareto set from the runs:** p2 (700 / 64 / resnet18), p3 (200 / 256 / resnet18)" in text
    )
    for suffix in ("png", "svg"):
        assert (report / "figures" / f"tradeoff.{suffix}").stat().st_size > 5000


def test_without_censoring_the_set_is_the_planted_optimum(tmp_path: Path) -> None:
    results = load(write_gpu_results(tmp_path, spec([])))
    names = results.factor_names
    runs = {o.response: run_estimates(results.trials, names, o.response) for o in OBJECTIVES}
    model = {
        o.response: model_estimates(results.trials, results.factors, o.response) for o in OBJECTIVES
    }
    for estimates in (runs, model):
        means = pd.DataFrame({r: e["mean"] for r, e in estimates.items()})
        assert pareto_set(means, OBJECTIVES) == BY_HAND
    # the full 2^3 model reproduces each point's mean; its interval is that of a mean
    energy, cells = model["energy_to_accuracy"], runs["energy_to_accuracy"]
    assert energy["mean"].to_numpy() == pytest.approx(cells["mean"].to_numpy())
    assert (energy["low"] < energy["mean"]).all() and (energy["mean"] < energy["high"]).all()
    assert energy.at["p3", "mean"] == pytest.approx(9500, abs=3 * 200 / 3**0.5)


def test_the_report_renders_its_sections(report: Path) -> None:
    text = (report / "index.md").read_text()
    for heading in (
        "## Censored runs: target accuracy 0.85 never reached",
        "## Energy meters",
        "## energy_to_accuracy (J)",
        "## Trade-offs",
    ):
        assert heading in text
    assert "24 of 24 succeeded trials had an energy meter" in text
    assert "![energy to accuracy](figures/energy_to_accuracy.png)" in text
    assert (report / "figures" / "energy_to_accuracy.svg").exists()
    page = (report / "index.html").read_text()
    assert "Trade-offs" in page and "Pareto set from the runs" in page
    assert page.count("data:image/png;base64") >= text.count("](figures/")


def test_trials_without_a_meter_are_named_and_each_fit_says_which_runs_it_used(
    tmp_path: Path,
) -> None:
    factors = [("gpu", [0, 1]), ("batch_size", [64, 256]), ("model", ["resnet18", "resnet50"])]
    planted = {B: -1500.0, M: 6000.0}
    gpu_spec = SyntheticGpuCampaign(
        factors=factors, replicates=1, time_effects=planted, energy_effects=planted, seed=4
    )
    root = write_gpu_results(tmp_path, gpu_spec)
    design = pd.read_csv(root / "design.csv", dtype={"trial_id": str}).sort_values("run_order")
    cpu = design.loc[design["gpu_coded"] == -1, "trial_id"].tolist()
    for trial_id in cpu:
        path = root / "trials" / trial_id / "result.json"
        result = json.loads(path.read_text())
        result.update(
            device="cpu",
            energy_j=None,
            train_energy_j=None,
            energy_to_accuracy_j=None,
            energy_source="none: no GPU (device cpu)",
        )
        path.write_text(json.dumps(result))
    text = (write_report(root) / "index.md").read_text()
    meters = text[text.index("## Energy meters") : text.index("## Noise")]
    assert "4 of 8 succeeded trials had **no energy meter**" in meters
    assert all(trial_id in meters for trial_id in cpu)
    assert "no GPU (device cpu)" in meters
    gpu = design.loc[design["gpu_coded"] == 1, "trial_id"].tolist()
    section = text[text.index("## energy_to_accuracy (J)") : text.index("## accuracy (fraction)")]
    assert f"Fitted on 4 of 8 runs: {', '.join(gpu)}; left out: {', '.join(cpu)} " in section
    assert "(no energy meter: no GPU (device cpu))" in section
    assert "never reached the target" not in section  # unmetered is not censored
