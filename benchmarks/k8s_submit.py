"""How fast the controller puts 500 trials into a real API server, against `kubectl create -f`.

On the test control plane (scripts/cluster, with 50 kwok nodes) it runs, interleaved and
repeated, (a) the controller creating a 500-trial campaign's objects (ConfigMap, Service and
Indexed Job per trial) with concurrency 500, and (b) ``kubectl create -f`` of the same objects,
pre-rendered, into a fresh namespace. It prints the median ratio kubectl time / controller time
(target >= 1.0). Then it runs a 500-trial campaign with concurrency 50 and 2 s pods, sampling how
many trials run while some still wait, and prints the fraction of allowed concurrency kept busy
(target >= 95%). Katib kept 160 of 3,600 planned pods running because it created trials too
slowly (katib#1328); this is the number that would show it.
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

from benchmarks.cluster import drop_namespace, kwok_namespace  # noqa: E402
from tests.cluster import launcher  # noqa: E402
from tests.cluster.campaign_crd import install_campaign_crd  # noqa: E402
from tests.cluster.simulated import simulated_campaign  # noqa: E402
from trainbed.contract.campaign import Campaign  # noqa: E402
from trainbed.orchestrator.kube.adapter.api import KubeApi  # noqa: E402
from trainbed.orchestrator.kube.control.controller import Controller  # noqa: E402
from trainbed.orchestrator.kube.objects.manifests import trial_configmap, trial_job, trial_service  # noqa: E402
from trainbed.orchestrator.kube.verbs.commands import campaign_object  # noqa: E402
from trainbed.orchestrator.plan.trials import plan_campaign  # noqa: E402

LR = {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}


def campaign(name: str, trials: int, concurrency: int, duration: str) -> Campaign:
    """A full factorial of one 5-level factor, replicated to ``trials`` runs; one rank each."""
    return simulated_campaign(
        name, [LR], trials=trials, concurrency=concurrency, duration=duration, cleanup="keep"
    )


def jobs_in(api: KubeApi, namespace: str) -> int:
    return len(api.batch.list_namespaced_job(namespace, limit=1000).items)


def time_controller(api: KubeApi, trials: int) -> float:
    namespace = kwok_namespace(api, "bench", with_results=False)
    spec = campaign("bench", trials, concurrency=trials, duration="600s")
    api.apply_campaign(campaign_object(spec, namespace))
    controller = Controller(api, namespace, only="bench").start()
    start = time.perf_counter()
    thread = threading.Thread(target=controller.run, daemon=True)
    thread.start()
    while True:
        executor = controller.runtimes.get("bench")
        if executor is not None and jobs_in(api, namespace) >= trials:
            break
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    controller.stop()
    drop_namespace(api, namespace)
    return elapsed


def time_kubectl(api: KubeApi, kubeconfig: Path, trials: int) -> float:
    namespace = kwok_namespace(api, "bench", with_results=False)
    spec = campaign("bench", trials, concurrency=trials, duration="600s")
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
        [launcher.kubectl_path(), "--kubeconfig", str(kubeconfig), "create", "-f", handle.name],
        check=True,
        capture_output=True,
        timeout=600,
    )
    elapsed = time.perf_counter() - start
    Path(handle.name).unlink()
    drop_namespace(api, namespace)
    return elapsed


def busy_fraction(api: KubeApi, trials: int, concurrency: int, duration: str) -> float:
    namespace = kwok_namespace(api, "bench")
    spec = campaign("busy", trials, concurrency=concurrency, duration=duration)
    api.apply_campaign(campaign_object(spec, namespace))
    controller = Controller(api, namespace, only="busy").start()
    thread = threading.Thread(target=lambda: controller.run(until_done=True), daemon=True)
    thread.start()
    samples: list[float] = []
    while thread.is_alive():
        jobs = api.batch.list_namespaced_job(namespace, limit=1000).items
        active = sum(
            1
            for j in jobs
            if not any(
                c.type in ("Complete", "Failed") and c.status == "True"
                for c in (j.status.conditions or [])
            )
        )
        waiting = trials - len(jobs)
        if waiting > 0 and len(jobs) > 0:
            samples.append(min(active, concurrency) / concurrency)
        time.sleep(0.25)
    controller.stop()
    drop_namespace(api, namespace)
    return statistics.mean(samples) if samples else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    cluster = launcher.up(nodes=args.nodes)
    api = KubeApi.from_environment(str(cluster.kubeconfig))
    install_campaign_crd(api)
    ratios = []
    for i in range(args.repeats):
        controller_s = time_controller(api, args.trials)
        kubectl_s = time_kubectl(api, cluster.kubeconfig, args.trials)
        ratios.append(kubectl_s / controller_s)
        print(
            f"repeat {i + 1}: controller {controller_s:.2f} s, kubectl {kubectl_s:.2f} s, "
            f"ratio {kubectl_s / controller_s:.2f}",
            flush=True,
        )
    busy = busy_fraction(api, args.trials, args.concurrency, "2s")
    print(f"busy fraction of allowed concurrency ({args.concurrency}): {busy:.1%}")
    print(f"k8s_submit ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
