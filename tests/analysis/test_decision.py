"""Predict, recommend and confirm on results with planted effects and a known optimum.

The truth is written into synthetic results directories (``analysis/reading/synthetic.py``): time
and
accuracy each follow planted main effects, and the fastest setting breaks the accuracy
constraint, so the recommendation must trade. The interval coverage is checked on the pure
model fit over 500 draws, without directories.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import special
from typer.testing import CliRunner

from trainbed.analysis.models.anova import fit_response
from trainbed.analysis.models.predict import predict, resolve
from trainbed.analysis.models.predictor import Predictor, t_quantile
from trainbed.analysis.models.recommend import recommend
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.confirmation_section import Check, checks, mean_interval, verdict
from trainbed.analysis.reporting.report import write_report
from trainbed.contract.confirmation import ConfirmationBlock, FrozenPrediction
from trainbed.contract.errors import UserError
from trainbed.contract.goal import parse_goal
from trainbed.orchestrator.cli import app

FACTORS = [("cpu", ["500m", "1"]), ("batch_size", [16, 64]), ("lr", [0.02, 0.1])]
#: time: faster with more CPU and a larger batch, a little with a larger lr
TIME = {("cpu",): -2.0, ("batch_size",): -1.5, ("lr",): -0.5}
#: accuracy: a larger batch costs 3 points, so batch_size=64 misses accuracy >= 0.9
ACCURACY = (0.9, {("batch_size",): -0.03, ("lr",): 0.01}, 0.002)
#: min time s.t. accuracy >= 0.9: cpu high, batch_size low (the constraint), lr high
OPTIMUM = {"cpu": "1", "batch_size": 16, "lr": 0.1}


def _campaign(**overrides: object) -> SyntheticCampaign:
    base: dict[str, object] = {
        "name": "decide",
        "factors": FACTORS,
        "generators": {},
        "replicates": 2,
        "mean": 10.0,
        "effects": TIME,
        "noise": 0.1,
        "planted": {"final_accuracy": ACCURACY},
        "write_tb": False,
        "iterations": 0,
    }
    base.update(overrides)
    return SyntheticCampaign(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("full"), _campaign())


@pytest.fixture(scope="module")
def half(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # C = AB: the optimum (cpu +, batch_size -, lr +) has AB = -1 != C, so it was not run
    return write_results(tmp_path_factory.mktemp("half"), _campaign(generators={2: [0, 1]}))


def test_the_recommendation_is_the_planted_optimum_under_the_constraint(full: Path) -> None:
    rec = recommend(full, "min time s.t. accuracy >= 0.9")
    assert rec.best is not None and rec.best.levels == OPTIMUM
    assert rec.best.run  # a full factorial ran every combination
    # the unconstrained fastest (batch_size=64) is ranked, but infeasible
    fastest = max(rec.candidates, key=lambda c: c.score)
    assert fastest.levels["batch_size"] == 64 and not fastest.feasible
    # runner-up: cpu=1, batch_size=16, lr=0.02: 1 s slower with sd 0.1: nearly sure
    assert rec.runner_up is not None and rec.runner_up.levels["lr"] == 0.02
    assert rec.p_runner_up_better is not None and rec.p_runner_up_better < 0.01
    assert recommend(full, "min time").best.levels["batch_size"] == 64  # type: ignore[union-attr]


def test_the_optimum_a_fraction_left_out_is_found_and_rests_on_aliases(half: Path) -> None:
    rec = recommend(half, "min time s.t. accuracy >= 0.9")
    assert rec.best is not None and rec.best.levels == OPTIMUM
    assert not rec.best.run
    aliased = rec.best.predictions["time"].aliased
    assert any(a.startswith("lr (not cpu:batch_size") for a in aliased), aliased
    assert rec.best_run is not None and rec.best_run.run
    assert rec.best_run.predictions["time"].aliased == []


def test_a_desirability_trades_the_two_responses(full: Path) -> None:
    rec = recommend(full, "desirability max accuracy 0.85..0.95, min time 5..12")
    assert rec.best is not None and rec.best.levels == OPTIMUM
    assert rec.p_runner_up_better is not None and 0 <= rec.p_runner_up_better <= 0.5


def test_predictions_at_design_points_are_the_reports_fitted_values(full: Path) -> None:
    results = load(full)
    fit = fit_response(results.trials, results.factors, "time")
    fitted = results.trials.set_index("trial_id").loc[fit.fitted.index]
    for _, row in fitted.drop_duplicates(["cpu", "batch_size", "lr"]).iterrows():
        settings = {name: row[name] for name, _ in FACTORS}
        found = predict(full, settings, responses=["time"]).predictions[0]
        assert found.mean == pytest.approx(fit.fitted[row.name], abs=1e-9)
        assert found.measured_runs == 2 and found.aliased == []


def test_interpolation_is_labelled_and_extrapolation_refused_in_one_line(full: Path) -> None:
    found = predict(full, {"cpu": "750m", "batch_size": 16, "lr": "0.1"}, responses=["time"])
    assert found.point["cpu"].how == "interpolated" and found.point["cpu"].coded == 0.0
    assert any(note.startswith("interpolation: cpu = 750m") for note in found.notes())
    middle = found.predictions[0].mean
    ends = [
        predict(full, {**OPTIMUM, "cpu": c}, responses=["time"]).predictions[0].mean
        for c in ("500m", "1")
    ]
    assert middle == pytest.approx(sum(ends) / 2)
    for bad in ({"cpu": "2"}, {"cpu": "250m"}, {"batch_size": "huge"}, {"gpu": "1"}):
        with pytest.raises(UserError) as err:
            predict(full, bad)
        assert "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["predict", str(full), "--set", "cpu=2"])
    assert result.exit_code == 2
    assert "outside the levels run" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2  # one line, wrapped at most once


def test_predict_command_prints_each_response(full: Path) -> None:
    result = CliRunner().invoke(
        app, ["predict", str(full), "--set", "cpu=1", "--set", "batch_size=64", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"response": "time"' in result.output and '"how": "averaged"' in result.output


def _trials(x: np.ndarray, y: np.ndarray, names: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({f"{n}_coded": x[:, j] for j, n in enumerate(names)})
    frame["trial_id"] = [f"t{i}" for i in range(len(y))]
    frame["run_order"] = np.arange(1, len(y) + 1)
    frame["status"] = "succeeded"
    frame["time"] = y
    return frame


def test_intervals_cover_the_truth_at_their_nominal_rate() -> None:
    """500 draws of a replicated 2^3 with planted effects and an interaction: the 90% PI holds
    a new run, and the 90% CI the true mean, at least 88% of the time, at a design point and
    at a point in between (interpolated).

    Each draw contributes its exact conditional rate rather than one coin toss, so 500 draws
    measure the rate to a few tenths of a percent instead of ±1.3%: the PI's, given the fit,
    is the probability that a new run (σ = 1 is known here) lands inside it; the CI's, given
    the fitted mean and the model's leverage h = se_mean² / MSE, is the probability over the
    MSE (σ²χ²₈/8, independent of the mean in least squares) that the interval reaches the
    truth. Both use the estimate's own error, so a biased mean or a wrong leverage fails."""
    names = ["a", "b", "c"]
    factors = [{"name": n, "levels": [0, 1]} for n in names]
    points = np.array(list(itertools.product([-1, 1], repeat=3)), dtype=float)
    x = np.vstack([points, points])
    beta = {"a": 2.0, "b": -1.0, "c": 0.5, "a:b": 0.8}

    def truth(p: dict[str, float]) -> float:
        return 10 + sum(q * np.prod([p[f] for f in t.split(":")]) for t, q in beta.items())

    targets = [{"a": 1.0, "b": -1.0, "c": 1.0}, {"a": 0.5, "b": 1.0, "c": -1.0}]
    rng = np.random.default_rng(7)
    mean_at = [truth(t) for t in targets]
    design_truth = np.array([truth(dict(zip(names, row, strict=True))) for row in x])
    pi_rate = np.zeros(len(targets))
    ci_hits = np.zeros(len(targets))
    draws = 500
    t = t_quantile(0.90, 8)  # df = 16 runs - 8 coefficients
    for _ in range(draws):
        y = design_truth + rng.normal(0, 1.0, len(x))
        model = Predictor.fit(_trials(x, y, names), factors, "time")
        for i, target in enumerate(targets):
            est = model.estimate(target)
            assert est.df == 8 and est.se_mean is not None and est.se_pred is not None
            low, high = est.mean - t * est.se_pred, est.mean + t * est.se_pred
            pi_rate[i] += special.ndtr(high - mean_at[i]) - special.ndtr(low - mean_at[i])
            assert model.mse is not None
            leverage = est.se_mean**2 / model.mse
            needed = 8 * (est.mean - mean_at[i]) ** 2 / (t**2 * leverage)  # χ²₈ must exceed
            ci_hits[i] += special.chdtrc(8, needed)
    assert (pi_rate / draws >= 0.88).all(), pi_rate / draws
    assert (ci_hits / draws >= 0.88).all(), ci_hits / draws
    assert (pi_rate / draws <= 0.93).all(), "intervals far too wide would pass trivially"


def test_resolve_matches_levels_by_value() -> None:
    factors = [{"name": "cpu", "levels": ["500m", "1"]}, {"name": "bs", "levels": [16, 64]}]
    point = resolve(factors, {"cpu": "1000m", "bs": "64"})
    assert (point["cpu"].coded, point["bs"].coded) == (1.0, 1.0)
    assert point["cpu"].how == point["bs"].how == "level"
    assert resolve(factors, {"bs": 40})["bs"].coded == pytest.approx(0.0)
    assert resolve(factors, {})["cpu"].how == "averaged"


def test_goal_lines_parse_and_refuse() -> None:
    goal = parse_goal("min time s.t. accuracy >= 0.9 and cost <= 0.5")
    assert goal.minimize == "time" and [c.text() for c in goal.subject_to] == [
        "accuracy >= 0.9",
        "cost <= 0.5",
    ]
    assert parse_goal(goal.text()) == goal
    assert parse_goal("max throughput").maximize == "throughput"
    wanted = parse_goal("desirability max accuracy 0.9..0.99, min cost 1..2")
    assert wanted.desirability is not None and wanted.responses == ["accuracy", "cost"]
    assert wanted.desirability[0].score(0.945) == pytest.approx(0.5)
    for bad in ("fastest please", "min speed", "min time s.t. accuracy ~ 1", "desirability x"):
        with pytest.raises(ValueError):
            parse_goal(bad)


def _block(means: dict[str, float], aliased: list[str]) -> ConfirmationBlock:
    return ConfirmationBlock(
        block=1,
        goal="min time s.t. accuracy >= 0.9",
        levels={"cpu": "1"},
        coded={"cpu": 1.0},
        design_point=not aliased,
        trial_ids=["c1", "c2", "c3"],
        predictions=[
            FrozenPrediction(
                response=r, unit="s", mean=m, se_mean=0.1, mse=0.09, df=8, aliased=aliased
            )
            for r, m in means.items()
        ],
        model_runs=16,
    )


def test_the_verdict_blames_the_model_and_points_to_the_foldover() -> None:
    block = _block({"time": 9.0, "accuracy": 0.93}, ["lr (not cpu:batch_size)"])
    low, high = mean_interval(block.predictions[0], 3) or (0, 0)
    # t(0.975, 8) = 2.306 times sqrt(se_mean² + MSE/3) = sqrt(0.01 + 0.03) = 0.2
    assert (low, high) == pytest.approx((9.0 - 0.4612, 9.0 + 0.4612), abs=1e-3)
    inside = checks(block, {"time": [9.1, 8.9, 9.0], "accuracy": [0.93, 0.94, 0.92]})
    assert all(c.inside for c in inside)
    assert verdict(block, inside, fraction=True).startswith("**Confirmed**")
    missed = checks(block, {"time": [12.0, 12.5, 11.8], "accuracy": [0.93, 0.94, 0.92]})
    text = verdict(block, missed, fraction=True)
    assert text.startswith("**Not confirmed**") and "model is inadequate" in text
    assert "augment DIR --foldover" in text and "lr (not cpu:batch_size)" in text
    noisy = verdict(block, missed, fraction=True, disturbed={"c1": "other load"})
    assert "not decided" in noisy and "c1: other load" in noisy
    undecided = [Check("time", "s", 9.0, None, None, 0)]
    assert verdict(block, undecided, fraction=True).startswith("**No verdict**")


def test_the_report_carries_the_recommendation_and_the_ranking(full: Path, tmp_path: Path) -> None:
    out = write_report(full, tmp_path / "report", goal=parse_goal("min time s.t. accuracy >= 0.9"))
    text = (out / "index.md").read_text()
    section = text[text.index("## Recommendation") :]
    assert "**Recommended: cpu=1, batch_size=16, lr=0.1**" in section
    assert "runner-up: cpu=1, batch_size=16, lr=0.02" in section
    assert "### Accuracy per second" in section
    assert (out / "recommendation.csv").is_file() and (out / "recommendation.json").is_file()
    assert (out / "accuracy_per_second.csv").is_file()
    plain = write_report(full, tmp_path / "plain")
    assert "No goal: set `spec.goal`" in (plain / "index.md").read_text()


def test_the_plain_python_t_matches_scipy() -> None:
    from scipy import stats

    from trainbed.analysis.models import student_t

    for df in (1, 2, 3, 4, 8, 30, 200):
        for p in (0.01, 0.6, 0.9, 0.95, 0.975, 0.995, 0.9995):
            assert student_t.quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)
        for x in (-50.0, -3.0, -1.0, 0.0, 0.3, 1.0, 2.5, 10.0, 100.0):
            assert student_t.cdf(x, df) == pytest.approx(stats.t.cdf(x, df), abs=1e-12)
    assert student_t.quantile(0.5, 5) == pytest.approx(0.0, abs=1e-12)


def test_the_predict_path_imports_neither_statsmodels_nor_matplotlib_nor_scipy() -> None:
    import subprocess
    import sys

    code = (
        "import sys, trainbed.orchestrator.cli, trainbed.analysis.models.predict, "
        "trainbed.orchestrator.predict_view\n"
        "from trainbed.analysis import load, predict\n"
        "assert callable(load) and callable(predict)\n"
        "print(sorted(m for m in ('statsmodels', 'matplotlib', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_bad_goal_is_one_line_and_a_goal_without_its_response_says_why(
    full: Path, tmp_path: Path
) -> None:
    result = CliRunner().invoke(app, ["analyze", str(full), "--goal", "fastest please"])
    assert result.exit_code == 2 and "--goal" in result.output
    assert "Traceback" not in result.output
    out = write_report(full, tmp_path / "r", goal=parse_goal("min cost"))
    assert "cost needs prices: set spec.cost" in (out / "index.md").read_text()
