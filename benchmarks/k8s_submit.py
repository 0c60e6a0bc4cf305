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
import uuid
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.cluster import launcher  # noqa: E402
from trainbed.contract.env import API_VERSION
from trainbed.orchestrator.kube.api import KubeApi  # noqa: E402
from trainbed.orchestrator.kube.commands import campaign_object  # noqa: E402
from trainbed.orchestrator.kube.controller import Controller  # noqa: E402
from trainbed.orchestrator.kube.crd import campaign_crd  # noqa: E402
from trainbed.orchestrator.kube.manifests import trial_configmap, trial_job, trial_service  # noqa: E402
from trainbed.orchestrator.plan.spec import Campaign, parse_campaign  # noqa: E402
from trainbed.orchestrator.plan.trials import plan_campaign  # noqa: E402


def campaign(name: str, trials: int, concurrency: int, duration: str) -> Campaign:
    """A full factorial of one 5-level factor, replicated to ``trials`` runs; one rank each."""
    return parse_campaign(
        {
            "apiVersion": API_VERSION,
            "kind": "Campaign",
            "metadata": {"name": name},
            "spec": {
                "design": {"type": "full", "replicates": trials // 5, "seed": 1},
                "factors": [
                    {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}
                ],
                "trial": {
                    "workload": {"dataset": "digits", "parallelism": 1},
                    "resources": {"cpu": "100m", "memory": "128Mi"},
                },
                "execution": {"concurrency": concurrency, "trial_timeout_s": 600},
                "kubernetes": {
                    "image": "trainbed:bench",
                    "cleanup": "keep",
                    "pod_annotations": {"trainbed.io/sim-duration": duration},
                },
            },
        }
    )


def new_namespace(api: KubeApi, with_results: bool = False) -> str:
    """A fresh namespace; with a results PVC bound to a static PV when pods must really run."""
    name = f"bench-{uuid.uuid4().hex[:6]}"
    api.core.create_namespace({"metadata": {"name": name}})
    if with_results:
        api.core.create_persistent_volume(
            {
                "metadata": {"name": f"{name}-results"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "manual",
                    "hostPath": {"path": f"/tmp/{name}"},
                    "claimRef": {"namespace": name, "name": "trainbed-results"},
                },
            }
        )
        api.core.create_namespaced_persistent_volume_claim(
            name,
            {
                "metadata": {"name": "trainbed-results"},
                "spec": {
                    "accessModes": ["ReadWriteMany"],
                    "storageClassName": "manual",
                    "volumeName": f"{name}-results",
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
    return name


def jobs_in(api: KubeApi, namespace: str) -> int:
    return len(api.batch.list_namespaced_job(namespace, limit=1000).items)


def time_controller(api: KubeApi, trials: int) -> float:
    namespace = new_namespace(api)
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
    api.core.delete_namespace(namespace)
    return elapsed


def time_kubectl(api: KubeApi, kubeconfig: Path, trials: int) -> float:
    namespace = new_namespace(api)
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
    api.core.delete_namespace(namespace)
    return elapsed


def busy_fraction(api: KubeApi, trials: int, concurrency: int, duration: str) -> float:
    namespace = new_namespace(api, with_results=True)
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
    api.core.delete_namespace(namespace)
    api.core.delete_persistent_volume(f"{namespace}-results")
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
    try:
        client.ApiextensionsV1Api(api.api_client).create_custom_resource_definition(campaign_crd())
        time.sleep(2)
    except ApiException as err:
        if err.status != 409:
            raise
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
