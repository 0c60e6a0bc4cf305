"""Does the CPU limit bite in pods? The same trial at ``cpu: 500m`` and ``cpu: 1`` on the real node.

The Kubernetes twin of ``cpu_limit_effect.py``: a campaign with one factor, ``resources.cpu`` at
"500m" and "1" (full design, ``--repeats`` replicates, not randomised, so the levels alternate),
each trial ``--ranks`` pods of FashionMNISTCNN on synthetic data, run with ``trainbed run
--backend kubernetes`` on the test cluster's real node (the quickstart's ``spec.kubernetes``:
image ``trainbed:test``, the node's toleration and selector). The kubelet sets the limits; every
trial's ``result.json`` says what its pod's cgroup enforced (``enforcement.read_back``), and the
benchmark refuses a trial whose cgroup disagrees with its level. It prints each trial, the load
average before and after, the per-level medians and, last::

    k8s_cpu_limit ratio: X     (median train time at 500m / median at 1; target >= 1.4)

Needs the real node and the image (docs/real-node.md)::

    TRAINBED_CLUSTER_DIR=/tmp/rn scripts/cluster up --real-node --nodes 1
    TRAINBED_CLUSTER_DIR=/tmp/rn scripts/image build
    TRAINBED_CLUSTER_DIR=/tmp/rn .venv/bin/python benchmarks/k8s_cpu_limit.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.campaigns import ROOT, load_average, run_campaign, succeeded_trials  # noqa: E402
from benchmarks.cluster import real_node_namespace  # noqa: E402
from trainbed.contract.env import API_VERSION  # noqa: E402
from trainbed.contract.quantity import cpu_cores  # noqa: E402

NAME = "k8s-cpu-limit"
LEVELS = ("500m", "1")


def campaign(repeats: int, ranks: int, epochs: int) -> dict:
    quickstart = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": NAME},
        "spec": {
            "design": {"type": "full", "replicates": repeats, "seed": 1, "randomize": False},
            "factors": [{"name": "cpu", "target": "resources.cpu", "levels": list(LEVELS)}],
            "trial": {
                "workload": {
                    "dataset": "synthetic",
                    "model": "FashionMNISTCNN",
                    "epochs": epochs,
                    "batch_size": 64,
                    "parallelism": ranks,
                },
                "resources": {"cpu": "1", "memory": "2Gi"},
            },
            "responses": ["time"],
            "execution": {"trial_timeout_s": 1200, "concurrency": 1},
            "kubernetes": quickstart["spec"]["kubernetes"],  # the real node's image and placement
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=1, choices=(1, 2))
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    load_before = load_average()
    times: dict[str, list[float]] = defaultdict(list)
    rows = []
    with (
        real_node_namespace("k8s_cpu_limit", "cpu") as namespace,
        tempfile.TemporaryDirectory(prefix="trainbed-k8s-cpu-") as tmp,
    ):
        body = campaign(args.repeats, args.ranks, args.epochs)
        out = run_campaign(body, Path(tmp), "--backend", "kubernetes", "-n", namespace)
        for trial, result, spec in succeeded_trials(out):
            cpu = str(spec["resources"]["cpu"])
            back = (result.get("enforcement") or {}).get("read_back") or {}
            if back.get("cpu_limit") is None or abs(back["cpu_limit"] - cpu_cores(cpu)) > 1e-6:
                sys.exit(f"{trial.name}: cpu {cpu}, but the pod's cgroup read back {back}")
            times[cpu].append(result["train_time_s"])
            rows.append((result.get("started_at") or "", trial.name, cpu, result, back))
    for _, name, cpu, result, back in sorted(rows):
        print(
            f"{name}: cpu {cpu} x {args.ranks} pod(s), threads {result.get('threads')}, "
            f"train {result['train_time_s']:.2f} s, cgroup cfs quota {back['cpu_quota_us']} us "
            f"per {back['cpu_period_us']} us"
        )
    print(f"load average (1, 5, 15 min): {load_before} before, {load_average()} after")
    medians = {cpu: statistics.median(times[cpu]) for cpu in LEVELS}
    for cpu, median in medians.items():
        print(f"cpu {cpu}: median train time {median:.3f} s over {len(times[cpu])} trials")
    print(f"k8s_cpu_limit ratio: {medians['500m'] / medians['1']:.4f}")


if __name__ == "__main__":
    main()
