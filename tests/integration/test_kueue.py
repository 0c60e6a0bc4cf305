"""Trials queue through a real Kueue (v0.17, built from its Go module, with its webhooks) in
front of the real control plane; kwok nodes run the pods.

- A ClusterQueue whose quota fits one trial: the campaign's concurrency is 4, its 4 Jobs are
  created at once, and Kueue runs them one at a time; each record says when it was queued and
  admitted, and the Campaign showed queued trials while it ran.
- A LocalQueue that does not exist: the Campaign's Blocked condition names it within 30 s.
"""

# ruff: noqa: F811 (the shared fixtures are imported from test_controller)
from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import kueue, launcher
from tests.cluster.simulated import SIM_DURATION
from tests.integration.test_blocked import SAYS_WHY_S, _blocked_within
from tests.integration.test_controller import _run_controller, api, namespace, records  # noqa: F401
from trainbed.contract.kueue import QUEUE_LABEL
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus
from trainbed.orchestrator.kube.verbs.commands import campaign_object
from trainbed.orchestrator.plan.parse import parse_campaign

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
#: One trial: 2 ranks of 1 CPU and 1 GiB each. The quota fits one, not two.
TRIAL_CPU, QUOTA_CPU = 2, 3


@pytest.fixture(scope="module")
def with_kueue(cluster: launcher.Cluster) -> launcher.Cluster:
    try:
        kueue.up(cluster)
    except launcher.ClusterError as err:
        pytest.fail(f"Kueue could not start: {err}", pytrace=False)
    return cluster


def _apply(cluster: launcher.Cluster, *objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    subprocess.run(
        [launcher.kubectl_path(), f"--kubeconfig={cluster.kubeconfig}", "apply", "-f", "-"],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


@pytest.fixture
def queue(with_kueue: launcher.Cluster, namespace: str) -> Iterator[str]:
    """A LocalQueue in ``namespace`` on a ClusterQueue of its own with room for one trial."""
    group = "kueue.x-k8s.io/v1beta2"
    cluster_queue = f"cq-{namespace}"
    _apply(
        with_kueue,
        {"apiVersion": group, "kind": "ResourceFlavor", "metadata": {"name": "default"}},
        {
            "apiVersion": group,
            "kind": "ClusterQueue",
            "metadata": {"name": cluster_queue},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [
                            {
                                "name": "default",
                                "resources": [
                                    {"name": "cpu", "nominalQuota": str(QUOTA_CPU)},
                                    {"name": "memory", "nominalQuota": "64Gi"},
                                ],
                            }
                        ],
                    }
                ],
            },
        },
        {
            "apiVersion": group,
            "kind": "LocalQueue",
            "metadata": {"name": "team", "namespace": namespace},
            "spec": {"clusterQueue": cluster_queue},
        },
    )
    yield "team"
    subprocess.run(
        [launcher.kubectl_path(), f"--kubeconfig={with_kueue.kubeconfig}", "delete"]
        + ["clusterqueue", cluster_queue, "--wait=false"],
        capture_output=True,
        timeout=60,
    )


def _campaign(namespace: str, name: str, queue: str, duration: str) -> dict[str, Any]:
    data = {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name},
        "spec": {
            "design": {"type": "full", "replicates": 1},
            "factors": [
                {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]},
                {"name": "batch", "target": "workload.batch_size", "levels": [64, 128]},
            ],
            "trial": {
                "workload": {"dataset": "digits", "model": "MLP", "epochs": 1, "parallelism": 2},
                "resources": {"cpu": "1", "memory": "1Gi"},
            },
            "execution": {"concurrency": 4, "trial_timeout_s": 300},
            "kubernetes": {
                "image": "trainbed:test",
                "pod_annotations": {SIM_DURATION: duration},
                "queue": queue,
            },
        },
    }
    return campaign_object(parse_campaign(data), namespace)


def _overlaps(spans: list[tuple[str, str]]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    ordered = sorted(spans)
    return [(a, b) for a, b in zip(ordered, ordered[1:], strict=False) if b[0] < a[1]]


def test_quota_of_one_trial_runs_them_one_at_a_time(
    api: KubeApi, with_kueue: launcher.Cluster, namespace: str, queue: str
) -> None:
    obj = _campaign(namespace, "quota", queue, duration="3s")
    api.apply_campaign(obj)
    seen: list[CampaignStatus] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            got = api.get_campaign(namespace, "quota") or {}
            seen.append(CampaignStatus.from_storage(got.get("status")))
            stop.wait(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        _run_controller(api, namespace, "quota", timeout=240)
    finally:
        stop.set()
        watcher.join(5)
    jobs = api.batch.list_namespaced_job(namespace, label_selector="trainbed.io/campaign=quota")
    assert all(j.metadata.labels[QUEUE_LABEL] == queue for j in jobs.items)
    entries = records(api, namespace, "quota")
    assert len(entries) == 4 and all(e["status"] == "succeeded" for e in entries.values())
    for trial_id, entry in entries.items():
        assert entry["queued"] and entry["admitted"], (trial_id, entry)
        assert entry["queued"] <= entry["admitted"] <= entry["started"] <= entry["finished"]
    # Kueue let one trial hold the quota at a time: admitted-to-finished spans never overlap
    spans = [(e["admitted"], e["finished"]) for e in entries.values()]
    assert not _overlaps(spans), f"two trials ran at once under a quota of one: {spans}"
    assert any(s.queued >= 2 for s in seen), "the Campaign never showed trials queued"
    assert max(s.running for s in seen) <= 1, "more than one trial admitted at once"
    final = seen[-1] if seen else CampaignStatus()
    queued = final.condition("Queued")
    assert queued is not None and queued.status == "False"


def test_missing_local_queue_is_named_within_30_s(
    api: KubeApi, with_kueue: launcher.Cluster, namespace: str
) -> None:
    obj = _campaign(namespace, "noqueue", "nope", duration="1s")
    api.apply_campaign(obj)
    began = time.monotonic()
    status = _blocked_within(api, namespace, "noqueue", SAYS_WHY_S)
    assert time.monotonic() - began <= SAYS_WHY_S
    blocked = status.blocked
    assert blocked is not None and blocked.reason == "QueueMissing", blocked
    assert "LocalQueue nope doesn't exist" in blocked.message
    queued = status.condition("Queued")
    assert queued is not None and queued.reason == "QueueMissing"
