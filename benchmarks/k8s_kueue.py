"""What queueing through Kueue costs a campaign: throughput and admission delay, on kwok.

On the test control plane with Kueue (``scripts/cluster up --kueue``, 50 kwok nodes) it runs,
interleaved and repeated, a campaign of 500 simulated trials (one rank, 100m CPU and 128Mi
each; kwok pods that run ``--duration``) two ways:

* without a queue, at concurrency 50: the controller alone keeps 50 trials running;
* with a queue whose ClusterQueue's quota fits 50 trials (5 CPU, 6400Mi), at concurrency 500:
  the controller creates every Job suspended at once and Kueue alone decides how many run,
  as docs/kubernetes.md advises for a shared cluster.

For each it prints the wall time from the controller's start to the campaign's completion and
the throughput (trials per minute); for the queued one also the median and p99 admission delay
(``admitted_at - queued_at`` from the records: the Job's creation and its ``startTime``, both
whole seconds in Kubernetes). A trial's admission delay includes its wait for quota behind the
50 running trials, as a user's would. The last line is the median over repeats of throughput
with the queue / throughput without (``k8s_kueue ratio: X``; 1.0 means Kueue costs nothing).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import drop_namespace, kwok_namespace, kwok_queue  # noqa: E402
from tests.cluster import kueue, launcher  # noqa: E402
from tests.cluster.campaign_crd import install_campaign_crd  # noqa: E402
from tests.cluster.simulated import simulated_campaign  # noqa: E402
from trainbed.orchestrator.kube.adapter.api import KubeApi  # noqa: E402
from trainbed.orchestrator.kube.control.controller import Controller  # noqa: E402
from trainbed.orchestrator.kube.control.record_store import RecordStore  # noqa: E402
from trainbed.orchestrator.kube.verbs.commands import campaign_object  # noqa: E402

LR = {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}


def run_campaign(
    api: KubeApi, cluster: launcher.Cluster, trials: int, slots: int, duration: str, queued: bool
) -> tuple[float, list[float]]:
    """(wall seconds, admission delays) of one campaign in a fresh namespace."""
    namespace = kwok_namespace(api, "kq" if queued else "nq")
    name = "bench"
    spec = simulated_campaign(
        name,
        [LR],
        trials=trials,
        concurrency=trials if queued else slots,
        duration=duration,
        cleanup="keep",
        queue=kwok_queue(cluster, namespace, slots) if queued else None,
    )
    api.apply_campaign(campaign_object(spec, namespace))
    controller = Controller(api, namespace, only=name).start()
    thread = threading.Thread(target=lambda: controller.run(until_done=True), daemon=True)
    start = time.perf_counter()
    thread.start()
    thread.join(1800)
    elapsed = time.perf_counter() - start
    if thread.is_alive():
        controller.stop()
        sys.exit(f"k8s_kueue: the {'queued' if queued else 'plain'} campaign took over 30 min")
    controller.stop()
    entries = RecordStore(api, namespace, name, chunks={}).load()
    done = sum(1 for e in entries.values() if e.get("status") == "succeeded")
    if done != trials:
        sys.exit(f"k8s_kueue: {done} of {trials} trials succeeded")
    delays = [
        (_time(e["admitted"]) - _time(e["queued"])).total_seconds()
        for e in entries.values()
        if e.get("queued") and e.get("admitted")
    ]
    if queued and len(delays) != trials:
        sys.exit(f"k8s_kueue: only {len(delays)} of {trials} records say when they were admitted")
    drop_namespace(api, namespace)
    if queued:
        kueue.delete_cluster_queue(cluster, namespace)
    return elapsed, delays


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--slots", type=int, default=50, help="concurrency; trials the quota fits")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--duration", default="2s", help="how long each simulated pod runs")
    args = parser.parse_args()
    cluster = launcher.up(nodes=args.nodes, kueue=True)
    api = KubeApi.from_environment(str(cluster.kubeconfig))
    install_campaign_crd(api)
    ratios, all_delays = [], []
    for i in range(args.repeats):
        plain_s, _ = run_campaign(api, cluster, args.trials, args.slots, args.duration, False)
        queued_s, delays = run_campaign(api, cluster, args.trials, args.slots, args.duration, True)
        all_delays += delays
        ratio = plain_s / queued_s  # throughput with the queue / without, same trials
        ratios.append(ratio)
        print(
            f"repeat {i + 1}: without a queue {plain_s:.1f} s "
            f"({60 * args.trials / plain_s:.0f} trials/min), with Kueue {queued_s:.1f} s "
            f"({60 * args.trials / queued_s:.0f} trials/min), ratio {ratio:.2f}; admission delay "
            f"median {statistics.median(delays):.0f} s, p99 {p99(delays):.0f} s",
            flush=True,
        )
    print(
        f"admission delay over {len(all_delays)} queued trials: median "
        f"{statistics.median(all_delays):.0f} s, p99 {p99(all_delays):.0f} s"
    )
    print(f"k8s_kueue ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
