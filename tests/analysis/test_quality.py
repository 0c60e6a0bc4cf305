"""The report's trust sections on a synthetic campaign with noise records written in: the Noise
section near the top (flags, exclusion, what the fits do), the robust summaries, the advisor,
the adjusted effects, predicted against measured, and ``quality.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainbed.analysis.models.noise import NoisePolicy
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.noise_section import assess_noise
from trainbed.analysis.reporting.quality import (
    QUALITY_FILE,
    QualityOptions,
    quality_options,
    trust_sections,
)
from trainbed.analysis.reporting.report import write_report
from trainbed.contract.errors import UserError
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.noise import Calibration, RankNoise
from trainbed.contract.pilot import PilotRecord, TrialPrediction, write_pilot

EFFECTS = {("cpu",): -8.0, ("network",): 4.0}


@pytest.fixture()
def campaign(tmp_path: Path) -> tuple[Path, str]:
    """A 2^(4-1) x 2 synthetic campaign whose trials carry noise records; one is slow."""
    spec = SyntheticCampaign(effects=EFFECTS, noise=1.0, replicates=2, seed=9, write_tb=False)
    root = write_results(tmp_path, spec)
    layout = ResultsLayout(root)
    trial_ids = sorted(p.name for p in layout.trials_dir.iterdir())
    slow = trial_ids[3]
    for i, trial_id in enumerate(trial_ids):
        path = layout.trial(trial_id).result_file
        result = json.loads(path.read_text())
        seconds = 0.45 if trial_id == slow else 0.15 + 0.002 * i
        record = RankNoise(
            rank=0,
            host="h",
            node="n1" if i % 2 else "n2",
            calibration_before=Calibration(seconds=seconds, threads=1, cpu_limit=1.0),
            calibration_after=Calibration(seconds=seconds, threads=1, cpu_limit=1.0),
            host_busy_cores=1.0,
            own_busy_cores=0.97,
            cpu_wait_pct=1.0,
            steal_pct=0.0,
            iowait_pct=0.0,
        )
        result["noise"] = [record.model_dump(mode="json")]
        result["concurrent_trials"] = []
        path.write_text(json.dumps(result))
    return root, slow


def test_noise_section_flags_and_excludes(campaign: tuple[Path, str], tmp_path: Path) -> None:
    root, slow = campaign
    results = load(root)
    kept = assess_noise(results, NoisePolicy(), tmp_path)
    assert list(kept.frame[kept.frame["flagged"]]["trial_id"]) == [slow]
    assert kept.excluded == [] and len(kept.results.trials) == 16
    assert "**1 of 16 trials flagged.**" in kept.markdown and slow in kept.markdown
    assert "**include** the flagged" in kept.markdown
    dropped = assess_noise(results, NoisePolicy(exclude=True), tmp_path)
    assert dropped.excluded == [slow] and len(dropped.results.trials) == 15
    assert slow not in set(dropped.results.trials["trial_id"])
    assert "left out of every fit below" in dropped.markdown
    assert (tmp_path / "noise.csv").exists()


def test_results_without_records_say_so(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(seed=2, write_tb=False, replicates=1))
    found = assess_noise(load(root), NoisePolicy(exclude=True), tmp_path)
    assert "No trial carries a noise record" in found.markdown and found.excluded == []


def test_report_has_the_noise_section_near_the_top(campaign: tuple[Path, str]) -> None:
    root, slow = campaign
    layout = ResultsLayout(root)
    trials = sorted(p.name for p in layout.trials_dir.iterdir())
    write_pilot(
        layout.pilot_file,
        PilotRecord(
            campaign="synthetic",
            iterations=20,
            trials=[TrialPrediction(trial_id=t, epochs=5, train_time_s=7.0) for t in trials],
        ),
    )
    options = QualityOptions(noise=NoisePolicy(covariate=True, block="node"))
    out = write_report(root, quality=options)
    text = (out / "index.md").read_text()
    noise_at = text.index("## Noise")
    assert noise_at < text.index("## time") and slow in text[noise_at : text.index("## time")]
    for heading in (
        "## Robust summaries",
        "## Replicate advisor",
        "## Adjusted effects",
        "## Predicted against measured",
    ):
        assert heading in text, heading
    data = json.loads((out / QUALITY_FILE).read_text())
    assert data["noise"]["flagged"] == [slow]
    assert {a["response"] for a in data["advisor"]} >= {"time"}
    assert data["prediction"]["median_abs_train_error_pct"] == pytest.approx(
        100 * (7.0 - 6.5) / 6.5  # synthetic train time: 5 epochs of 1 + 0.1 e
    )
    assert "time (covariate)" in data["adjusted"] and "time (block: node)" in data["adjusted"]


def test_trust_sections_without_fits_or_pilot(campaign: tuple[Path, str], tmp_path: Path) -> None:
    root, _ = campaign
    results = load(root)
    noise = assess_noise(results, NoisePolicy(), tmp_path)
    text = trust_sections(results, {}, noise, QualityOptions(), tmp_path)
    assert "## Replicate advisor" in text and "## Predicted" not in text
    assert json.loads((tmp_path / QUALITY_FILE).read_text())["prediction"] is None


@pytest.mark.parametrize(
    ("kwargs", "flag"),
    [
        ({"block": "rack"}, "--block"),
        ({"confidence": 1.5}, "--confidence"),
        ({"noise_threshold": "0.2"}, "--noise-threshold"),
        ({"noise_threshold": "x"}, "--noise-threshold"),
        ({"target_ci": "-1"}, "--target-ci"),
        ({"pilot": Path("/nonexistent/pilot.json")}, "--pilot"),
    ],
)
def test_bad_options_are_one_clear_error(kwargs: dict, flag: str) -> None:
    with pytest.raises(UserError, match=flag):
        quality_options(**kwargs)


def test_good_options() -> None:
    options = quality_options(noise_threshold="35%", target_ci="2.5", exclude_noisy=True)
    assert options.noise.threshold == pytest.approx(0.35) and options.noise.exclude
    assert options.target.value == 2.5 and not options.target.relative
