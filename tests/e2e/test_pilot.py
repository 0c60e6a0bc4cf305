"""``trainbed pilot`` end to end: real short trials per design point, pilot.json, then the
campaign and ``trainbed analyze`` setting each prediction beside its measured time."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from tests.e2e.helpers import run_cli, write_campaign
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.pilot import read_pilot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
#: Generous: on a shared 2-core machine at load 14 one small 2-rank trial took 3.5 minutes.
TIMEOUT_S = 1800

ITERATIONS = 25


def test_pilot_predicts_and_analyze_compares(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml",
        "piloted",
        [{"name": "batch_size", "target": "workload.batch_size", "levels": [32, 64]}],
        design={"type": "full", "replicates": 1, "seed": 5},
        workload={"epochs": 2, "parallelism": 2},
        timeout_s=TIMEOUT_S,
    )
    out = tmp_path / "out"
    proc = run_cli(
        "pilot", str(spec), "--iterations", str(ITERATIONS), "--out", str(out), timeout=TIMEOUT_S
    )
    assert "predicted campaign wall time" in proc.stdout
    layout = ResultsLayout(out / "piloted")
    pilot = read_pilot(layout.pilot_file)
    assert pilot is not None and pilot.iterations == ITERATIONS
    assert len(pilot.points) == 2 and len(pilot.trials) == 2
    for point in pilot.points:
        assert point.status == "succeeded", point
        assert point.iterations == ITERATIONS and point.steps_per_epoch
        assert point.tmi_avg_s and point.first_iteration_s and point.launch_s
        # the pilot trained exactly ITERATIONS steps, over as many epochs as that takes
        trial = ResultsLayout(layout.pilot_dir).trial(point.pilot_trial_id)
        with open(trial.iterations_file(1), newline="") as handle:
            assert len(list(csv.DictReader(handle))) == ITERATIONS
        result = json.loads(trial.result_file.read_text())
        assert result["epochs_run"] == math.ceil(ITERATIONS / point.steps_per_epoch)
    assert pilot.campaign_wall_time_s == pytest.approx(sum(t.duration_s for t in pilot.trials))
    # the pilot's folder is a results directory of its own
    run_cli("analyze", str(layout.pilot_dir))

    run_cli("run", str(spec), "--out", str(out), "--no-analyze", timeout=TIMEOUT_S)
    report = json.loads(run_cli("analyze", str(layout.root), "--json").stdout)
    prediction = report["prediction"]
    assert prediction["iterations"] == ITERATIONS and len(prediction["trials"]) == 2
    for row in prediction["trials"]:
        assert row["status"] == "succeeded" and row["train_measured_s"] > 0
        assert row["train_error_pct"] is not None and row["wall_error_pct"] is not None
    assert prediction["median_abs_train_error_pct"] is not None
    text = (layout.report_dir / "index.md").read_text()
    assert "## Predicted against measured" in text


def test_pilot_refuses_kubernetes_and_bad_iterations(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml", "p", [{"name": "lr", "target": "workload.lr", "levels": [0.1, 0.2]}]
    )
    for args, words in (
        (["--backend", "kubernetes"], "not supported yet"),
        (["--iterations", "1"], "--iterations"),
    ):
        proc = run_cli("pilot", str(spec), "--out", str(tmp_path), *args, check=False)
        assert proc.returncode == 2 and words in proc.stderr and "Traceback" not in proc.stderr
