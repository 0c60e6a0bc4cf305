"""Trials queue through a real Kueue (v0.17, built from its Go module, with its webhooks) in
front of the real control plane; kwok nodes run the pods.

- A ClusterQueue whose quota fits one trial: the campaign's concurrency is 4, its 4 Jobs are
  created at once, and Kueue runs them one at a time; each record says when it was queued and
  admitted, and the Campaign showed queued trials while it ran.
- A LocalQueue that does not exist: the Campaign's Blocked condition names it within 30 s.
- Kueue stopped mid-campaign (SIGKILL): nothing new is admitted and the Jobs it refuses to
  create wait; started again, it admits the rest and the campaign completes with every trial
  recorded once.
- A higher-priority workload preempts a running trial: the trial is queued again, runs again
  and is recorded as succeeded with its preemption.
"""

# ruff: noqa: F811 (the shared fixtures are imported from test_controller)
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cluster import kueue, launcher
from tests.cluster.simulated import SIM_DURATION
from tests.integration.test_blocked import SAYS_WHY_S, _blocked_within
from tests.integration.test_controller import _run_controller, api, namespace, records  # noqa: F401
from trainbed.contract.kueue import PRIORITY_CLASS_LABEL, QUEUE_LABEL
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.controller import Controller
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus
from trainbed.orchestrator.kube.objects.metadata import (
    container_security_context,
    pod_security_context,
)
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


@pytest.fixture
def queue(with_kueue: launcher.Cluster, namespace: str) -> Iterator[str]:
    """A LocalQueue in ``namespace`` on a ClusterQueue of its own with room for one trial,
    which preempts lower-priority work for higher."""
    kueue.apply(with_kueue, kueue.queue_objects(namespace, "team", str(QUOTA_CPU), "64Gi"))
    yield "team"
    kueue.delete_cluster_queue(with_kueue, namespace)


def _campaign(namespace: str, name: str, queue: str, duration: str, **kube: Any) -> dict[str, Any]:
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
                **kube,
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


def _admitted(api: KubeApi, namespace: str, name: str) -> set[str]:
    """The Jobs of campaign ``name`` that Kueue has let run (no longer suspended)."""
    jobs = api.batch.list_namespaced_job(namespace, label_selector=f"trainbed.io/campaign={name}")
    return {j.metadata.name for j in jobs.items if not j.spec.suspend}


def _first_admitted(api: KubeApi, controller: Controller, namespace: str, name: str) -> set[str]:
    """Reconcile until Kueue admits some of campaign ``name``'s Jobs (60 s at most): those."""
    deadline = time.monotonic() + 60
    while not _admitted(api, namespace, name) and time.monotonic() < deadline:
        controller.reconcile_once()
        time.sleep(0.3)
    admitted = _admitted(api, namespace, name)
    assert admitted, "Kueue admitted nothing"
    return admitted


def test_kueue_stopped_mid_campaign_then_back(
    api: KubeApi, with_kueue: launcher.Cluster, namespace: str, queue: str
) -> None:
    obj = _campaign(namespace, "outage", queue, duration="2s")
    obj["spec"]["execution"]["concurrency"] = 2  # so that Jobs are created during the outage
    api.apply_campaign(obj)
    controller = Controller(api, namespace, only="outage").start()
    try:
        admitted = _first_admitted(api, controller, namespace, "outage")
        kueue.stop(with_kueue.state)
        outage_ends = time.monotonic() + 12  # the first trial (2 s) ends meanwhile
        while time.monotonic() < outage_ends:
            controller.reconcile_once()
            time.sleep(0.3)
        assert _admitted(api, namespace, "outage") == admitted, "admitted while Kueue was down"
        kueue.start(with_kueue)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            controller.reconcile_once()
            got = api.get_campaign(namespace, "outage") or {}
            if CampaignStatus.from_storage(got.get("status")).phase == "Completed":
                break
            time.sleep(0.3)
    finally:
        controller.stop()
        kueue.start(with_kueue)
    entries = records(api, namespace, "outage")
    assert len(entries) == 4 and all(e["status"] == "succeeded" for e in entries.values())
    jobs = api.batch.list_namespaced_job(namespace, label_selector="trainbed.io/campaign=outage")
    assert len(jobs.items) == 4, "a trial's Job was created twice"


def _high_priority_job(namespace: str, queue: str) -> dict[str, Any]:
    """Someone else's Job that needs the whole quota, at a higher Kueue priority."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "urgent",
            "namespace": namespace,
            "labels": {QUEUE_LABEL: queue, PRIORITY_CLASS_LABEL: "high"},
        },
        "spec": {
            "suspend": True,
            "template": {
                "metadata": {"annotations": {SIM_DURATION: "3s"}},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": pod_security_context(),
                    "containers": [
                        {
                            "name": "main",
                            "image": "urgent:test",
                            "securityContext": container_security_context(),
                            "resources": {"requests": {"cpu": str(QUOTA_CPU), "memory": "1Gi"}},
                        }
                    ],
                },
            },
        },
    }


def test_preempted_trial_is_recorded_and_runs_again(
    api: KubeApi, with_kueue: launcher.Cluster, namespace: str, queue: str
) -> None:
    obj = _campaign(namespace, "preempt", queue, duration="8s", priority_class="low")
    api.apply_campaign(obj)
    controller = Controller(api, namespace, only="preempt").start()
    preempted_seen = False
    try:
        _first_admitted(api, controller, namespace, "preempt")
        kueue.apply(with_kueue, [_high_priority_job(namespace, queue)])
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            controller.reconcile_once()
            got = api.get_campaign(namespace, "preempt") or {}
            status = CampaignStatus.from_storage(got.get("status"))
            # the trial Kueue took back shows why (the Queued condition names the commonest
            # reason, which is the others' QuotaExhausted)
            preempted_seen |= any(f.reason.startswith("Evicted") for f in status.in_flight)
            if status.phase == "Completed":
                break
            time.sleep(0.3)
    finally:
        controller.stop()
    entries = records(api, namespace, "preempt")
    assert len(entries) == 4 and all(e["status"] == "succeeded" for e in entries.values())
    preempted = {t: e for t, e in entries.items() if "preempted by Kueue" in e.get("reason", "")}
    assert preempted, f"no trial recorded its preemption: {entries}"
    assert preempted_seen, "the Campaign's in-flight trials never said one was evicted"
    urgent = api.batch.read_namespaced_job("urgent", namespace)
    assert urgent.status.succeeded == 1
