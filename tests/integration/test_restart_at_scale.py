"""A 2,000-trial campaign whose controller is killed (SIGKILL) at 3 random points and started
again each time: every trial is recorded exactly once, no trial's Job is created twice, and the
Campaign object stays small. Real control plane, kwok nodes, the controller as its own process
(``trainbed controller``), ``cleanup: delete`` (the path where a record must be durable before a
Job may go)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

from tests.cluster.simulated import simulated_campaign
from tests.integration.test_controller import api, namespace  # noqa: F401
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.adapter.informer import Changes, Informer
from trainbed.orchestrator.kube.control.record_store import records_selector
from trainbed.orchestrator.kube.verbs.commands import campaign_object
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(3600)]
TRIALS = 2000
NAME = "restarts"


def big_campaign(ns: str) -> dict[str, Any]:
    spec = simulated_campaign(
        NAME,
        [{"name": "lr", "target": "workload.lr", "levels": [0.01, 0.02, 0.05, 0.1, 0.2]}],
        trials=TRIALS,
        concurrency=200,
        duration="1s",
        cleanup="delete",
        seed=7,
        image="trainbed:test",
        trial_timeout_s=1800,
    )
    return campaign_object(spec, ns)


def test_killed_three_times_every_trial_recorded_once(
    api: KubeApi,  # noqa: F811
    cluster: Any,
    namespace: str,  # noqa: F811
) -> None:
    obj = big_campaign(namespace)
    planned = {t.trial_id for t in plan_campaign(parse_campaign(obj)).trials}
    assert len(planned) == TRIALS
    api.apply_campaign(obj)
    # every Job the campaign ever has, by name -> the uids seen (two uids: created twice)
    uids: dict[str, set[str]] = {}
    lock = threading.Lock()

    def seen(name: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if new is not None:
            with lock:
                uids.setdefault(name, set()).add(new["metadata"]["uid"])

    def keep_uid(job: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"name": job["metadata"]["name"], "uid": job["metadata"]["uid"]}}

    jobs = Informer(
        api.lister("Job", namespace),
        Changes(),
        name="test-jobs",
        transform=keep_uid,
        on_change=seen,
    ).start()
    kills = sorted(random.Random(17).sample(range(100, TRIALS - 100), 3))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    sizes: list[int] = []
    try:
        for stop_at in [*kills, None]:
            proc = subprocess.Popen(
                [sys.executable, "-m", "trainbed.orchestrator.cli", "controller", "-n", namespace],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                while True:
                    raw = api.get_campaign_json(namespace, NAME) or b"{}"
                    sizes.append(len(raw))
                    status = json.loads(raw).get("status") or {}
                    if stop_at is not None and int(status.get("done") or 0) >= stop_at:
                        break
                    if status.get("phase") == "Completed":
                        break
                    assert proc.poll() is None, "the controller exited by itself"
                    time.sleep(0.3)
            finally:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
    finally:
        jobs.stop()
    status = api.get_campaign(namespace, NAME)["status"]
    assert status["phase"] == "Completed" and status["done"] == TRIALS, status
    assert status["failed"] == 0
    chunks = api.list_objects("ConfigMap", namespace, records_selector(NAME))
    keys = [key for cm in chunks for key in (cm.get("data") or {})]
    assert len(keys) == len(set(keys)) == TRIALS, "every trial recorded exactly once"
    assert set(keys) == planned
    twice = {name: ids for name, ids in uids.items() if len(ids) > 1}
    assert not twice, f"Jobs created twice: {sorted(twice)[:5]}"
    assert len(uids) >= TRIALS * 0.95, "the watch saw (nearly) every trial's Job"
    assert max(sizes) < 64 * 1024, max(sizes)
