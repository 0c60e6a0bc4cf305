"""Does the CPU limit bite? The same trial at cpu "1" and cpu "2" through the real local executor.

Writes a campaign (one factor, ``resources.cpu`` at "1" and "2", full design, 3 replicates, not
randomised so the runs alternate), runs it with ``trainbed run --no-analyze``, reads every
trial's ``result.json`` (``train_time_s``, ``enforcement.mode``) and ``trial.json``
(``resources.cpu``), and prints the enforcement mode, the per-level medians and, last::

    cpu_limit_effect ratio: X     (median train time at the low cpu / median at the high)

On a machine with 2 or more free cores X should be clearly above 1 when the limit is enforced.
Run: ``.venv/bin/python benchmarks/cpu_limit_effect.py [--replicates 3] [--epochs 1]
[--levels 500m 1]`` (``--levels``: the two cpu levels, "1" and "2" by default; "500m" and "1"
is the quickstart's factor, which the duty cycle holds without root).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.campaigns import run_campaign, succeeded_trials  # noqa: E402
from trainbed.contract.env import API_VERSION  # noqa: E402

NAME = "cpu-limit-effect"


def campaign(replicates: int, epochs: int, levels: list[str]) -> dict:
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": NAME},
        "spec": {
            "design": {"type": "full", "replicates": replicates, "seed": 1, "randomize": False},
            "factors": [{"name": "cpu", "target": "resources.cpu", "levels": levels}],
            "trial": {
                "workload": {
                    "dataset": "synthetic",
                    "model": "FashionMNISTCNN",
                    "epochs": epochs,
                    "batch_size": 64,
                    "parallelism": 1,
                },
                "resources": {"cpu": "1", "memory": "2Gi"},
            },
            "responses": ["time"],
            "execution": {"trial_timeout_s": 600},
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--levels", nargs=2, default=["1", "2"], help="low and high cpu, e.g. 500m 1"
    )
    args = parser.parse_args()
    low, high = args.levels
    times: dict[str, list[float]] = defaultdict(list)
    modes: set[str] = set()
    rows = []
    with tempfile.TemporaryDirectory(prefix="trainbed-cpu-") as tmp:
        out = run_campaign(campaign(args.replicates, args.epochs, args.levels), Path(tmp))
        for trial, result, spec in succeeded_trials(out):
            cpu = str(spec["resources"]["cpu"])
            modes.add(result.get("enforcement", {}).get("mode", "none"))
            times[cpu].append(result["train_time_s"])
            rows.append((result.get("started_at") or "", trial.name, cpu, result))
    for _, name, cpu, result in sorted(rows):
        print(
            f"{name}: cpu {cpu}, threads {result.get('threads')}, "
            f"train {result['train_time_s']:.2f} s, "
            f"affinity {result.get('enforcement', {}).get('affinity')}, "
            f"achieved {result.get('enforcement', {}).get('cpu_achieved_cores')}"
        )
    print(f"enforcement mode: {', '.join(sorted(modes))}")
    medians = {cpu: statistics.median(values) for cpu, values in sorted(times.items())}
    for cpu, median in medians.items():
        print(f"cpu {cpu}: median train time {median:.3f} s over {len(times[cpu])} trials")
    print(f"cpu_limit_effect ratio: {medians[low] / medians[high]:.4f}")


if __name__ == "__main__":
    main()
