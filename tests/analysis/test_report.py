"""The report end to end: contract files, honesty about failed and corrupt inputs, derived
responses, and the two TensorBoard readers agreeing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis import load
from trainbed.analysis.models.responses import iteration_model, time_to_accuracy
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reading.tbevents import CorruptEventFileWarning, read_trial_scalars
from trainbed.analysis.reporting.report import write_report
from trainbed.contract.errors import ResultsError

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
        "q",
        "q_se",
        "q_ci95_low",
        "q_ci95_high",
        "q_ci90_low",
        "q_ci90_high",
        "effect",
        "variation_pct",
        "aliases",
        "unit",
    ]
    assert effects["term"].iloc[0] == "mean" and effects["term"].iloc[-1] == "Error"
    assert "cpu:memory" in set(effects["term"])
    assert (effects["effect"].dropna() == 2 * effects.dropna(subset="effect")["q"]).all()
    assert set(effects["unit"]) == {"s"}
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
    # wall time and train time are two responses, each named with its unit and meaning
    assert "## time (s)" in text and "## train_time (s)" in text and "## energy (J)" in text
    assert "includes start-up" in text
    assert "Not fitted: train_time does not vary" in text  # synthetic epochs are all alike
    html = (report / "index.html").read_text()
    assert 'src="data:image/png;base64,' in html and 'src="figures/' not in html
    assert html.index('class="toc"') < html.index('id="trials-that-did-not-succeed"')


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


EPOCHS = pd.DataFrame(
    {
        "trial_id": ["a"] * 3 + ["b"] * 3,
        "epoch": [1, 2, 3] * 2,
        "train_time_s": [1.0, 2.0, 4.0] * 2,
        "val_time_s": [0.5] * 6,
        # the worker's clock: train + validation + 0.25 s between epochs, per epoch
        "elapsed_s": [1.5, 4.25, 9.0] * 2,
        "val_accuracy": [0.5, 0.8, 0.9, 0.5, 0.6, 0.7],
    }
)


@pytest.mark.parametrize(
    ("threshold", "trial", "tta", "train_only", "censored"),
    [
        (0.5, "a", 1.5, 1.0, False),  # reached at epoch 1
        (0.8, "a", 4.25, 3.0, False),  # the clock at the end of epoch 2's validation
        (0.85, "a", 9.0, 7.0, False),
        (0.8, "b", np.nan, np.nan, True),  # never reached: censored, not zero
        (0.95, "a", np.nan, np.nan, True),
    ],
)
def test_time_to_accuracy_from_the_epoch_curve(
    threshold: float, trial: str, tta: float, train_only: float, censored: bool
) -> None:
    row = time_to_accuracy(EPOCHS, threshold).set_index("trial_id").loc[trial]
    assert bool(row["censored"]) is censored
    if censored:
        assert pd.isna(row["time_to_accuracy_s"]) and pd.isna(row["train_time_to_accuracy_s"])
    else:
        assert row["time_to_accuracy_s"] == pytest.approx(tta)
        assert row["train_time_to_accuracy_s"] == pytest.approx(train_only)


def test_tensorboard_tags_fall_back_when_result_epochs_are_absent() -> None:
    epochs = EPOCHS.rename(
        columns={
            "val_accuracy": "accuracy per epoch",
            "train_time_s": "time/epoch_train_s",
            "elapsed_s": "time/elapsed_s",
        }
    ).drop(columns="val_time_s")
    row = time_to_accuracy(epochs, 0.8).set_index("trial_id").loc["a"]
    assert row["time_to_accuracy_s"] == pytest.approx(4.25)
    assert row["train_time_to_accuracy_s"] == pytest.approx(3.0)


def test_results_without_the_clock_leave_the_canonical_time_unmeasured() -> None:
    row = time_to_accuracy(EPOCHS.drop(columns="elapsed_s"), 0.8).set_index("trial_id").loc["a"]
    assert pd.isna(row["time_to_accuracy_s"]) and not row["censored"]
    assert row["train_time_to_accuracy_s"] == pytest.approx(3.0)


def test_a_flipped_bit_is_caught_by_the_checksum_and_only_that_record_is_lost(
    tmp_path: Path,
) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=4, replicates=1))
    trial = next((root / "trials").iterdir())
    path = next((trial / "tb").glob("events.out.tfevents.*"))
    data = bytearray(path.read_bytes())
    data[-10] ^= 0x01  # inside the last record's float payload: protobuf alone would accept it
    path.write_bytes(bytes(data))
    with pytest.warns(CorruptEventFileWarning, match="bad payload checksum"):
        scalars = read_trial_scalars(trial)
    assert len(scalars) == 20  # 25 scalars, the last event (5 tags) skipped


def test_events_written_by_torch_summarywriter_with_hparams(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    root = write_results(
        tmp_path, SyntheticCampaign(effects=EFFECTS, seed=5, replicates=1, write_tb=False)
    )
    trial = next((root / "trials").iterdir())
    writer = SummaryWriter(str(trial / "tb"))
    for epoch in range(1, 4):
        writer.add_scalar("accuracy per epoch", 0.25 * epoch, epoch)
    writer.add_hparams({"lr": 0.1, "model": "MLP"}, {"hparam/final_accuracy": 0.75}, run_name=".")
    writer.close()
    fast = read_trial_scalars(trial)
    assert set(fast["tag"]) == {"accuracy per epoch", "hparam/final_accuracy"}
    epochs = load(root).epochs
    curve = epochs[epochs["trial_id"] == trial.name].set_index("epoch")["accuracy per epoch"]
    assert curve.dropna().to_dict() == pytest.approx({1: 0.25, 2: 0.5, 3: 0.75})
    assert not any(c.startswith("hparam/") for c in epochs.columns)


def test_no_succeeded_trial_stops_with_a_clear_message(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=6, replicates=1))
    for trial in (root / "trials").iterdir():
        result = json.loads((trial / "result.json").read_text())
        result.update(status="failed", reason="worker exited 1")
        (trial / "result.json").write_text(json.dumps(result))
    text = (write_report(root) / "index.md").read_text()
    assert "No trial succeeded" in text and "worker exited 1" in text
    assert not (root / "report" / "anova_time.csv").exists()


@pytest.mark.parametrize(("censored", "fitted"), [(0, True), (4, True), (12, False)])
def test_censored_time_to_accuracy_is_counted_and_fitted_only_when_enough_remain(
    tmp_path: Path, censored: int, fitted: bool
) -> None:
    spec = SyntheticCampaign(effects=EFFECTS, seed=7, response_field="time_to_accuracy_s")
    root = write_results(tmp_path, spec)
    for trial in sorted((root / "trials").iterdir())[:censored]:
        result = json.loads((trial / "result.json").read_text())
        result["time_to_accuracy_s"] = None
        (trial / "result.json").write_text(json.dumps(result))
    report = write_report(root)
    text = (report / "index.md").read_text()
    if censored:
        assert f"{censored} of 32 succeeded runs never reached the target" in text
    assert (report / "anova_time_to_accuracy.csv").exists() is fitted


def test_tta_thresholds_become_responses(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=8))
    report = write_report(root, tta_thresholds=[0.7, 0.95])
    tta = pd.read_csv(report / "time_to_accuracy.csv")
    assert tta[tta["threshold"] == 0.95]["censored"].all()
    text = (report / "index.md").read_text()
    assert "## time_to_accuracy_0.95" in text and "32 of 32 succeeded runs" in text
    assert not (report / "anova_time_to_accuracy_0.95.csv").exists()


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
    with pytest.raises(ResultsError, match="not a results directory"):
        load(tmp_path)
