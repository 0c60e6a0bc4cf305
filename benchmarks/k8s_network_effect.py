"""Does the network limit bite in pods? 2-rank DDP at ``resources.bandwidth: 20M`` against no limit
on the real node, where the CNI's bandwidth plugin shapes each pod by its annotations.

The Kubernetes half of ``network_effect.py``'s third measurement, on the same campaign (its
``campaign()``: one factor, ``resources.bandwidth`` at ``--rate`` and null, ``--repeats``
replicates, not randomised, so the levels alternate; 2-rank DDP of FashionMNISTResNet, 19.6 MB of
gradients a step), run with ``trainbed run --backend kubernetes`` on the test cluster's real node
(the quickstart's ``spec.kubernetes``). trainbed turns the level into the pods'
``kubernetes.io/{ingress,egress}-bandwidth`` annotations; while the campaign runs, the host's
``tc`` is read to show the plugin's tbf qdiscs (rate and burst). containerd gives those qdiscs
a burst of 2^32 bits (``math.MaxUint32`` in its ``toCNIBandWidth``; the annotations cannot set
one), so the first 512 MiB each pod sends or receives pass at full speed, and the rate binds
only after that. One epoch (``network_effect.py``'s: 3 steps a rank, 59 MB) fits in the bucket;
the trials therefore run ``--epochs`` (default 16: 48 steps a rank, 940 MB) and the comparison
is made on the steps past the bucket (from the step whose all-reduce volume so far exceeds
512 MiB by 15%, for the refill meanwhile; the same steps of the unlimited trials). It prints, per
trial, the median step and the achieved all-reduce rate over those steps, the whole-trial
medians (what a user of a short trial sees), and, last::

    k8s_network_effect ratio: X     (median step time past the bucket, limited / unlimited;
                                     local target >= 3)

Needs the real node and the image (docs/real-node.md)::

    TRAINBED_CLUSTER_DIR=/tmp/rn scripts/cluster up --real-node --nodes 1
    TRAINBED_CLUSTER_DIR=/tmp/rn scripts/image build
    TRAINBED_CLUSTER_DIR=/tmp/rn .venv/bin/python benchmarks/k8s_network_effect.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import statistics
import subprocess
import sys
import tempfile
import threading
from collections import defaultdict
from pathlib import Path

import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.campaigns import load_average, run_campaign, succeeded_trials  # noqa: E402
from benchmarks.cluster import real_node_namespace  # noqa: E402
from trainbed.contract.quantity import bandwidth_bps  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The tbf bucket containerd gives the bandwidth plugin: ``math.MaxUint32`` bits, in bytes.
BUCKET_BYTES = 2**32 // 8


def _local_benchmark():
    """benchmarks/network_effect.py, for its campaign (one definition of the comparison)."""
    spec = importlib.util.spec_from_file_location(
        "network_effect", ROOT / "benchmarks/network_effect.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def campaign(rate: str, repeats: int, epochs: int) -> tuple[str, dict]:
    body = _local_benchmark().campaign(rate, repeats)
    body["spec"]["trial"]["workload"]["epochs"] = epochs
    quickstart = yaml.safe_load((ROOT / "experiments" / "quickstart.yaml").read_text())
    body["metadata"]["name"] = name = "k8s-network-effect"
    body["spec"]["kubernetes"] = quickstart["spec"]["kubernetes"]  # the real node's
    body["spec"]["execution"]["concurrency"] = 1
    return name, body


class TbfWatch(threading.Thread):
    """Reads the host's qdiscs while trials run: the tbf rates the bandwidth plugin installs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.rates: set[str] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(1.0):
            shown = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
            self.rates |= set(re.findall(r"qdisc tbf .*? (rate \S+ burst \S+)", shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", default="20M")
    parser.add_argument("--epochs", type=int, default=16)
    args = parser.parse_args()
    _, body = campaign(args.rate, args.repeats, args.epochs)
    load_before = load_average()
    watch = TbfWatch()
    watch.start()
    trials: dict[str, list[dict]] = defaultdict(list)
    try:
        with (
            real_node_namespace("k8s_network_effect", "net") as namespace,
            tempfile.TemporaryDirectory(prefix="trainbed-k8s-net-") as tmp,
        ):
            out = run_campaign(body, Path(tmp), "--backend", "kubernetes", "-n", namespace)
            for trial, result, spec in succeeded_trials(out):
                frames = [pd.read_csv(p) for p in sorted((trial / "iterations").glob("*.csv"))]
                trials[str(spec["resources"]["bandwidth"])].append(
                    {
                        "trial": trial.name,
                        "started_at": result["started_at"],
                        "steps": pd.concat(frames),
                        "enforcement": result["enforcement"],
                    }
                )
    finally:
        watch.stop.set()
        watch.join(5)
    first = _past_bucket(trials[args.rate])
    for level, runs in sorted(trials.items()):
        for run in sorted(runs, key=lambda r: r["started_at"]):
            past = run["steps"][run["steps"].global_step >= first]
            network = run["enforcement"].get("network") or {}
            print(
                f"{run['trial']} bandwidth {level}: median step {past.step_s.median():.3f} s past "
                f"the bucket ({run['steps'].step_s.median():.3f} s over the trial), all-reduce "
                f"{past.allreduce_bytes.median() / 1e6:.1f} MB at "
                f"{past.allreduce_bps.median() / 1e6:.1f} Mbit/s "
                f"(enforced by: {network.get('bandwidth_enforced_by')})"
            )
    print(
        f"tbf qdiscs seen on the host while trials ran: {', '.join(sorted(watch.rates)) or 'none'}"
    )
    print(f"past the bucket: from global step {first} on")
    limited_runs = trials[args.rate]
    achieved = statistics.median(
        s for r in limited_runs for s in r["steps"][r["steps"].global_step >= first].allreduce_bps
    )
    error = achieved / bandwidth_bps(args.rate) - 1
    print(
        f"achieved all-reduce rate at {args.rate} past the bucket: {achieved / 1e6:.2f} Mbit/s "
        f"({error:+.1%}; within 15%: {'ok' if abs(error) <= 0.15 else 'MISSED'})"
    )
    print(f"load average (1, 5, 15 min): {load_before} before, {load_average()} after")
    whole = {level: _median_step(runs, 2) for level, runs in trials.items()}
    print(
        f"whole trial: median step {whole[args.rate]:.3f} s at {args.rate}, {whole['None']:.3f} s "
        f"with no limit (ratio {whole[args.rate] / whole['None']:.4f}: the bucket hides the limit)"
    )
    limited, unlimited = _median_step(limited_runs, first), _median_step(trials["None"], first)
    print(
        f"past the bucket: median step {limited:.3f} s at {args.rate}, {unlimited:.3f} s unlimited"
    )
    print(f"k8s_network_effect ratio: {limited / unlimited:.4f}")


def _past_bucket(runs: list[dict]) -> int:
    """The first global step whose rank had all-reduced more than the bucket (plus 15% for the
    tokens that refill meanwhile) before it, in every run."""
    first = 2
    for run in runs:
        for _, rank in run["steps"].groupby("rank"):
            ordered = rank.sort_values("global_step")
            before = ordered.allreduce_bytes.cumsum() - ordered.allreduce_bytes
            over = ordered[before > BUCKET_BYTES * 1.15]
            if over.empty:
                sys.exit(
                    "k8s_network_effect: no step past the bucket; run more --epochs "
                    f"(a rank all-reduced {ordered.allreduce_bytes.sum() / 2**20:.0f} MiB)"
                )
            first = max(first, int(over.global_step.iloc[0]))
    return first


def _median_step(runs: list[dict], first: int) -> float:
    return statistics.median(
        s for run in runs for s in run["steps"][run["steps"].global_step >= first].step_s
    )


if __name__ == "__main__":
    main()
