"""The report end to end: contract files, honesty about failed and corrupt inputs, derived
responses, and the two TensorBoard readers agreeing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from trainbed.analysis import load
from trainbed.analysis.report import write_report
from trainbed.analysis.responses import iteration_model, time_to_accuracy
from trainbed.analysis.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.tbevents import CorruptEventFileWarning, read_trial_scalars

EFFECTS = {("cpu",): -5.0, ("epochs",): 8.0}


def test_report_writes_the_contract_tables_and_figures(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=1))
    report = write_report(root, tta_thresholds=[0.7])
    assert report == root / "report"
    anova = pd.read_csv(report / "anova_time.csv")
    assert list(anova.columns) == ["term", "sum_sq", "df", "F", "PR(>F)"]
    effects = pd.read_csv(report / "effects_time.csv")
    assert list(effects.columns) == [
        "term",
        "effect",
        "ci95_low",
        "ci95_high",
        "variation_pct",
        "aliases",
    ]
    assert "cpu:memory" in set(effects["term"])
    for name in ("index.md", "index.html", "anova_time.tex", "effects_time.tex"):
        assert (report / name).exists(), name
    for stem in (
        "main_effects_time",
        "interactions_time",
        "pareto_time",
        "half_normal_time",
        "residuals_time",
        "learning_curves",
        "correlation",
        "time_to_accuracy",
    ):
        assert (report / "figures" / f"{stem}.png").exists(), stem
        assert (report / "figures" / f"{stem}.svg").exists(), stem
    text = (report / "index.md").read_text()
    assert "Not measured" in text  # energy is null in every result: reported, not fitted


def test_failed_trial_and_corrupt_event_file_give_warnings_not_a_crash(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=2))
    trial_dirs = sorted((root / "trials").iterdir())
    failed = trial_dirs[0]
    result = json.loads((failed / "result.json").read_text())
    result.update(status="oom_killed", reason="OOMKilled: a worker exited 137", wall_time_s=None)
    (failed / "result.json").write_text(json.dumps(result))
    missing = trial_dirs[1]
    shutil.rmtree(missing)
    corrupt = next((trial_dirs[2] / "tb").glob("events.out.tfevents.*"))
    data = corrupt.read_bytes()
    corrupt.write_bytes(data[: len(data) - 7])  # truncate the last record
    with pytest.warns(CorruptEventFileWarning, match=str(corrupt.name)):
        report = write_report(root)
    text = (report / "index.md").read_text()
    assert failed.name in text and "oom_killed" in text
    assert missing.name in text and "missing" in text
    assert "unbalanced" in text
    anova = pd.read_csv(report / "anova_time.csv").set_index("term")
    assert anova.loc["Residual", "df"] == 22  # 30 usable runs, 8 parameters
    with pytest.warns(CorruptEventFileWarning):
        scalars = read_trial_scalars(trial_dirs[2])
    assert len(scalars) > 0, "what the damaged file holds before the damage is kept"


def test_fast_reader_agrees_with_tbparse(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=3, replicates=1))
    trial = next((root / "trials").iterdir())
    fast = read_trial_scalars(trial, "fast").sort_values(["tag", "step"]).reset_index(drop=True)
    slow = read_trial_scalars(trial, "tbparse").sort_values(["tag", "step"]).reset_index(drop=True)
    assert len(fast) == 25
    pd.testing.assert_frame_equal(fast[["tag", "step"]], slow[["tag", "step"]])
    assert (fast["value"] - slow["value"]).abs().max() < 1e-6


def test_time_to_accuracy_is_censored_not_zero() -> None:
    epochs = pd.DataFrame(
        {
            "trial_id": ["a"] * 3 + ["b"] * 3,
            "epoch": [1, 2, 3] * 2,
            "train_time_s": [1.0, 1.0, 1.0] * 2,
            "val_time_s": [0.5] * 6,
            "val_accuracy": [0.5, 0.8, 0.9, 0.5, 0.6, 0.7],
        }
    )
    tta = time_to_accuracy(epochs, 0.8).set_index("trial_id")
    assert tta.loc["a", "tta_s"] == pytest.approx(3.0) and not tta.loc["a", "censored"]
    assert pd.isna(tta.loc["b", "tta_s"]) and tta.loc["b", "censored"]


def test_iteration_model_beta_and_estimates() -> None:
    steps = [1.0] + [0.1] * 10 + [0.2] * 10
    iterations = pd.DataFrame(
        {"trial_id": "t", "rank": 0, "global_step": range(1, 22), "step_s": steps}
    )
    model = iteration_model(iterations, pd.Series({"t": 0.5})).iloc[0]
    rest = sum(steps[1:])
    assert model["beta"] == pytest.approx((1.0 + 0.5) / rest)
    assert model["tmi_avg_s"] == pytest.approx(rest / 20)
    assert model["est_2nd_s"] == pytest.approx(0.1)
    assert model["est_2_6_s"] == pytest.approx(0.1)
    assert model["err_2_11_pct"] == pytest.approx(abs(0.1 - 0.15) / 0.15 * 100)


def test_load_needs_a_results_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a results directory"):
        load(tmp_path)
