"""Does the pilot predict the campaign? ``trainbed pilot``, then ``trainbed run``, then the error.

Writes a 2^2 campaign (``resources.cpu`` 500m / 1 x ``workload.batch_size`` 32 / 128; LeNet5 on
the synthetic data set, one rank, ``--epochs`` epochs so that training dominates: at least 30 s
of train time per trial on a quiet machine), pilots it (``--iterations`` per design point),
runs it, and compares each trial's predicted train time (``pilot.json``) with its measured one
(``result.json``'s ``train_time_s``). Also printed, from the same pilot: a naive predictor that
averages every pilot iteration including the first (what the iteration-time study's model
avoids), its error, and the ratio of the two errors (naive / model). The machine's load average
is printed before, between and after, because on a shared machine it is the first thing to
read. Last line::

    pilot_prediction error_pct: X     (median |predicted - measured| / measured of train time)

Run: ``.venv/bin/python benchmarks/pilot_prediction.py [--epochs 12] [--iterations 20]
[--keep DIR]`` (``--keep`` also writes the campaign's report, whose Noise section says how
quiet the machine was).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from trainbed.contract.env import API_VERSION, NO_PROGRESS
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.pilot import read_pilot
from trainbed.contract.records import read_result

NAME = "pilot-prediction"
#: Train time a trial must reach for training to dominate (the issue's >= 30 s).
MIN_TRAIN_S = 30.0


def campaign(epochs: int) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": NAME},
        "spec": {
            "design": {"type": "full", "replicates": 1, "seed": 3},
            "factors": [
                {"name": "cpu", "target": "resources.cpu", "levels": ["500m", "1"]},
                {"name": "batch_size", "target": "workload.batch_size", "levels": [32, 128]},
            ],
            "trial": {
                "workload": {
                    "dataset": "synthetic",
                    "model": "LeNet5",
                    "epochs": epochs,
                    "parallelism": 1,
                    "lr": 0.02,
                },
                "resources": {"cpu": "1", "memory": "2Gi"},
            },
            "responses": ["time"],
            "execution": {"trial_timeout_s": 3600},
        },
    }


def trainbed(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, NO_PROGRESS: "1"},
    )
    if proc.returncode != 0:
        raise SystemExit(f"trainbed {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def naive_predictions(layout: ResultsLayout, pilot) -> dict[str, float]:
    """Train time predicted from the mean of all pilot iterations (the first included)."""
    point_mean = {}
    for point in pilot.points:
        path = ResultsLayout(layout.pilot_dir).trial(point.pilot_trial_id).iterations_file(0)
        with open(path, newline="") as handle:
            steps = [float(r["step_s"]) for r in csv.DictReader(handle)]
        point_mean[tuple(sorted(point.levels.items()))] = statistics.fmean(steps)
    return {
        t.trial_id: point_mean[tuple(sorted(t.levels.items()))] * (t.iterations or 0)
        for t in pilot.trials
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument(
        "--keep", type=Path, default=None, help="Work in this folder and keep it (the report)."
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pilot-bench-") as scratch:
        tmp = args.keep.resolve() if args.keep else Path(scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        spec = Path(tmp) / "campaign.yaml"
        spec.write_text(yaml.safe_dump(campaign(args.epochs)))
        out = Path(tmp) / "out"
        print(f"before the pilot: {load()}", flush=True)
        trainbed("pilot", str(spec), "--iterations", str(args.iterations), "--out", str(out))
        print(f"after the pilot, before the campaign: {load()}", flush=True)
        trainbed("run", str(spec), "--out", str(out), "--no-analyze")
        print(f"after the campaign: {load()}", flush=True)
        layout = ResultsLayout(out / NAME)
        if args.keep:
            trainbed("analyze", str(layout.root))
            print(f"report (with the noise section): {layout.report_dir / 'index.md'}")
        pilot = read_pilot(layout.pilot_file)
        assert pilot is not None
        naive = naive_predictions(layout, pilot)
        errors, naive_errors = [], []
        print(
            f"{'trial':<13} {'levels':<28} {'predicted s':>11} {'measured s':>10} "
            f"{'error %':>8} {'naive %':>8}"
        )
        for prediction in pilot.trials:
            result = read_result(layout.trial(prediction.trial_id).root)
            measured = result.train_time_s if result else None
            if measured is None or prediction.train_time_s is None:
                print(f"{prediction.trial_id}: no comparison ({prediction.note})")
                continue
            error = 100 * (prediction.train_time_s - measured) / measured
            naive_error = 100 * (naive[prediction.trial_id] - measured) / measured
            errors.append(abs(error))
            naive_errors.append(abs(naive_error))
            levels = ", ".join(f"{k}={v}" for k, v in prediction.levels.items())
            short = " (under 30 s: training does not dominate)" if measured < MIN_TRAIN_S else ""
            print(
                f"{prediction.trial_id:<13} {levels:<28} {prediction.train_time_s:>11.1f} "
                f"{measured:>10.1f} {error:>+8.1f} {naive_error:>+8.1f}{short}"
            )
        if not errors:
            raise SystemExit("no trial could be compared")
        model, baseline = statistics.median(errors), statistics.median(naive_errors)
        print(f"campaign wall time predicted: {pilot.campaign_wall_time_s or float('nan'):.0f} s")
        print(f"naive (all pilot iterations averaged) median |error|: {baseline:.1f}%")
        print(f"pilot_prediction naive/model error ratio: {baseline / max(model, 1e-9):.2f}")
        print(f"pilot_prediction error_pct: {model:.1f}")


if __name__ == "__main__":
    main()
