"""How fast the controller puts 500 trials into a real API server, against `kubectl create -f`.

On the test control plane (scripts/cluster, with 50 kwok nodes) it runs, interleaved and
repeated, (a) the controller creating a 500-trial campaign's objects (ConfigMap, Service and
Indexed Job per trial) with concurrency 500, and (b) ``kubectl create -f`` of the same objects,
pre-rendered, into a fresh namespace; the ratio is kubectl time / controller time (target
>= 1.5). Then it runs a 500-trial campaign with concurrency 50 and 2 s pods, sampling four times
a second, while some trials still wait to be created, how many Jobs the controller has handed to
the cluster and not seen finish, and prints their mean fraction of the allowed concurrency
(target >= 95%). Katib kept 160 of 3,600 planned pods running because it created trials too
slowly (katib#1328); this is the number that would show it.

Both are measured twice: without a queue, and with every Job through a Kueue LocalQueue whose
quota fits 50 trials (``--modes``; Kueue is started for the second). With a queue a held Job
may still be suspended, waiting for Kueue to admit it, so the queued run also prints the
fraction admitted and running, which is Kueue's doing as much as the controller's. The Jobs are
counted as the API server's table (no objects), which costs the controller's process almost
nothing. The last line is the smaller of the modes' median ratios, so it meets the target only
when both do.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cluster import drop_namespace, job_states, kwok_namespace, kwok_queue  # noqa: E402
from tests.cluster import kueue, launcher  # noqa: E402
from tests.cluster.campaign_crd import install_campaign_crd  # noqa: E402
from tests.cluster.simulated import simulated_campaign  # noqa: E402
from trainbed.contract.campaign import Campaign  # noqa: E402
from trainbed.orchestrator.kube.adapter.api import KubeApi  # noqa: E402
from trainbed.orchestrator.kube.control.controller import Controller  # noqa: E402
from trainbed.orchestrator.kube.objects.manifests import trial_configmap, trial_job, trial_service  # noqa: E402
from trainbed.orchestrator.kube.verbs.commands import campaign_object  # noqa: E402
from trainbed.orchestrator.plan.trials import plan_campaign  # noqa: E402

LR = {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}
FINISHED = ("Complete", "Failed")


class Setup:
    """The cluster, and per mode a fresh namespace (with a LocalQueue where queued)."""

    def __init__(self, cluster: launcher.Cluster, api: KubeApi, slots: int) -> None:
        self.cluster, self.api, self.slots = cluster, api, slots

    def namespace(self, queued: bool, with_results: bool) -> tuple[str, str | None]:
        namespace = kwok_namespace(self.api, "bench", with_results=with_results)
        return namespace, kwok_queue(self.cluster, namespace, self.slots) if queued else None

    def drop(self, namespace: str, queued: bool) -> None:
        drop_namespace(self.api, namespace)
        if queued:
            kueue.delete_cluster_queue(self.cluster, namespace)


def campaign(
    name: str, trials: int, concurrency: int, duration: str, queue: str | None
) -> Campaign:
    """A full factorial of one 5-level factor, replicated to ``trials`` runs; one rank each."""
    return simulated_campaign(
        name,
        [LR],
        trials=trials,
        concurrency=concurrency,
        duration=duration,
        cleanup="keep",
        queue=queue,
    )


def time_controller(setup: Setup, trials: int, queued: bool) -> float:
    api = setup.api
    namespace, queue = setup.namespace(queued, with_results=False)
    spec = campaign("bench", trials, concurrency=trials, duration="600s", queue=queue)
    api.apply_campaign(campaign_object(spec, namespace))
    controller = Controller(api, namespace, only="bench").start()
    start = time.perf_counter()
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    while controller.runtimes.get("bench") is None or (
        sum(job_states(api, namespace).values()) < trials
    ):
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    controller.stop()
    setup.drop(namespace, queued)
    return elapsed


def time_kubectl(setup: Setup, trials: int, queued: bool) -> float:
    namespace, queue = setup.namespace(queued, with_results=False)
    spec = campaign("bench", trials, concurrency=trials, duration="600s", queue=queue)
    docs: list[dict[str, Any]] = []
    for trial in plan_campaign(spec).trials:
        docs += [
            trial_configmap(spec, trial, namespace=namespace),
            trial_service(spec, trial, namespace=namespace),
            trial_job(spec, trial, namespace=namespace),
        ]
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump_all(docs, handle)
    start = time.perf_counter()
    subprocess.run(
        [launcher.kubectl_path(), "--kubeconfig", str(setup.cluster.kubeconfig)]
        + ["create", "-f", handle.name],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    Path(handle.name).unlink()
    setup.drop(namespace, queued)
    return elapsed


def busy_fractions(
    setup: Setup, trials: int, concurrency: int, duration: str, queued: bool
) -> tuple[float, float]:
    """Mean fractions of ``concurrency`` (held: Jobs not finished; running: and not
    suspended) while some trials wait to be created."""
    api = setup.api
    namespace, queue = setup.namespace(queued, with_results=True)
    spec = campaign("busy", trials, concurrency=concurrency, duration=duration, queue=queue)
    api.apply_campaign(campaign_object(spec, namespace))
    controller = Controller(api, namespace, only="busy").start()
    thread = threading.Thread(target=lambda: controller.run(until_done=True), daemon=True)
    thread.start()
    held: list[float] = []
    running: list[float] = []
    while thread.is_alive():
        states = job_states(api, namespace)
        created = sum(states.values())
        if 0 < created < trials:
            unfinished = created - sum(states[s] for s in FINISHED)
            held.append(min(unfinished, concurrency) / concurrency)
            running.append(min(unfinished - states["Suspended"], concurrency) / concurrency)
        time.sleep(0.25)
    controller.stop()
    setup.drop(namespace, queued)
    if not held:
        sys.exit("k8s_submit: no sample was taken while trials waited to be created")
    return statistics.mean(held), statistics.mean(running)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--modes", default="plain,queue", help="plain, queue or both")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"plain", "queue"}:
        sys.exit(f"k8s_submit: --modes takes plain and/or queue, not {args.modes!r}")
    cluster = launcher.up(nodes=args.nodes, kueue="queue" in modes)
    api = KubeApi.from_environment(str(cluster.kubeconfig))
    install_campaign_crd(api)
    setup = Setup(cluster, api, args.concurrency)
    print(f"Kueue runs (its webhooks see every Job): {kueue.running(cluster.state)}", flush=True)
    ratios: dict[str, list[float]] = {mode: [] for mode in modes}
    for i in range(args.repeats):
        for mode in modes:
            queued = mode == "queue"
            controller_s = time_controller(setup, args.trials, queued)
            kubectl_s = time_kubectl(setup, args.trials, queued)
            ratios[mode].append(kubectl_s / controller_s)
            print(
                f"repeat {i + 1} ({mode}): controller {controller_s:.2f} s, kubectl "
                f"{kubectl_s:.2f} s, ratio {kubectl_s / controller_s:.2f}",
                flush=True,
            )
    for mode in modes:
        held, running = busy_fractions(setup, args.trials, args.concurrency, "2s", mode == "queue")
        line = f"busy fraction of allowed concurrency ({args.concurrency}), {mode}: {held:.1%}"
        if mode == "queue":
            line += f" held, {running:.1%} admitted and running"
        print(line, flush=True)
    medians = {mode: statistics.median(values) for mode, values in ratios.items()}
    print("median ratios: " + ", ".join(f"{m} {v:.2f}" for m, v in medians.items()))
    print(f"k8s_submit ratio: {min(medians.values()):.2f}")


if __name__ == "__main__":
    main()
