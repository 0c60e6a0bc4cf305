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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections import defaultdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import launcher, realnode, realnode_volume  # noqa: E402
from trainbed.contract.env import API_VERSION  # noqa: E402
from trainbed.contract.quantity import cpu_cores  # noqa: E402

NAME = "k8s-cpu-limit"
ROOT = Path(__file__).resolve().parents[1]
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


def _kubectl(*args: str) -> str:
    done = subprocess.run([launcher.kubectl_path(), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"k8s_cpu_limit: kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ranks", type=int, default=1, choices=(1, 2))
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args()
    cluster = launcher.running(launcher.STATE)
    if cluster is None or not realnode.alive(launcher.STATE):
        sys.exit(f"k8s_cpu_limit: no real node runs for {launcher.STATE}: see docs/real-node.md")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    _kubectl(
        "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "charts/trainbed/crds")
    )
    namespace = f"cpu-{uuid.uuid4().hex[:6]}"
    _kubectl("create", "namespace", namespace)
    realnode_volume.results_volume(launcher.STATE, namespace)
    load_before = _load()
    try:
        with tempfile.TemporaryDirectory(prefix="trainbed-k8s-cpu-") as tmp:
            root = Path(tmp)
            spec = root / "campaign.yaml"
            body = campaign(args.repeats, args.ranks, args.epochs)
            spec.write_text(yaml.safe_dump(body, sort_keys=False))
            out = root / "results"
            proc = subprocess.run(
                [sys.executable, "-m", "trainbed.orchestrator.cli", "run", str(spec)]
                + ["--backend", "kubernetes", "-n", namespace, "--out", str(out), "--no-analyze"],
                env={**os.environ, "TRAINBED_NO_PROGRESS": "1"},
                capture_output=True,
                text=True,
            )
            if proc.returncode != 0:
                sys.exit(f"trainbed run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
            times: dict[str, list[float]] = defaultdict(list)
            rows = []
            for trial in sorted((out / NAME / "trials").iterdir()):
                result = json.loads((trial / "result.json").read_text())
                cpu = str(json.loads((trial / "trial.json").read_text())["resources"]["cpu"])
                if result["status"] != "succeeded":
                    sys.exit(f"{trial.name}: {result['status']}: {result.get('reason')}")
                back = (result.get("enforcement") or {}).get("read_back") or {}
                if back.get("cpu_limit") is None or abs(back["cpu_limit"] - cpu_cores(cpu)) > 1e-6:
                    sys.exit(f"{trial.name}: cpu {cpu}, but the pod's cgroup read back {back}")
                times[cpu].append(result["train_time_s"])
                rows.append((result.get("started_at") or "", trial.name, cpu, result, back))
    finally:
        _kubectl("delete", "namespace", namespace, "--wait=false")
        realnode_volume.delete_volume(launcher.STATE, namespace)
    for _, name, cpu, result, back in sorted(rows):
        print(
            f"{name}: cpu {cpu} x {args.ranks} pod(s), threads {result.get('threads')}, "
            f"train {result['train_time_s']:.2f} s, cgroup cfs quota {back['cpu_quota_us']} us "
            f"per {back['cpu_period_us']} us"
        )
    print(f"load average (1, 5, 15 min): {load_before} before, {_load()} after")
    medians = {cpu: statistics.median(times[cpu]) for cpu in LEVELS}
    for cpu, median in medians.items():
        print(f"cpu {cpu}: median train time {median:.3f} s over {len(times[cpu])} trials")
    print(f"k8s_cpu_limit ratio: {medians['500m'] / medians['1']:.4f}")


if __name__ == "__main__":
    main()
