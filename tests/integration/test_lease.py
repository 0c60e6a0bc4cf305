"""One controller per campaign (kube/control/lease.py), on the real control plane with kwok
nodes.

Two controllers are started on the same campaign, as when the chart's controller runs and
someone also types ``trainbed run --backend kubernetes``: exactly one holds the campaign's Lease
and reconciles it, the other waits. The holder stops cleanly half-way; the other takes the
released lease over at once, finishes the campaign from the records, and every trial is recorded
exactly once. Then ``trainbed run --backend kubernetes`` follows a ``trainbed controller`` that
holds the campaign, and takes it over when that one is SIGKILLed (no release).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.simulated import simulated_campaign
from tests.cluster.waiting import wait_for
from tests.integration.test_controller import api, namespace, records, seed001  # noqa: F401
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.controller import Controller
from trainbed.orchestrator.kube.control.lease import LEASE_S, RENEW_S, lease_name
from trainbed.orchestrator.kube.verbs.commands import campaign_object
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]


def _holder(kube: KubeApi, ns: str, name: str) -> str:
    lease = kube.get_object("Lease", ns, lease_name(name)) or {}
    return (lease.get("spec") or {}).get("holderIdentity") or ""


def test_two_controllers_one_campaign_one_holder_then_a_clean_handover(
    api: KubeApi,  # noqa: F811
    namespace: str,  # noqa: F811
) -> None:
    obj = seed001(namespace, duration="2s", concurrency=2, name="lease")
    api.apply_campaign(obj)
    name = obj["metadata"]["name"]
    planned = {t.trial_id for t in plan_campaign(parse_campaign(obj)).trials}
    first = Controller(api, namespace, only=name).start()
    second = Controller(api, namespace, only=name).start()
    threads = []
    for controller in (first, second):
        thread = threading.Thread(target=controller.run, kwargs={"until_done": True}, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        # exactly one holds it, the Lease says which, and the other never builds a runtime
        holders = [c for c in (first, second) if c.leases.holds(name)]
        assert len(holders) == 1, "both controllers, or neither, hold the campaign"
        holder, waiter = holders[0], (second if holders[0] is first else first)
        assert _holder(api, namespace, name) == holder.leases.identity
        wait_for(lambda: len(records(api, namespace, name)) >= 2, 120, "two recorded trials")
        assert name not in waiter.runtimes and waiter.followed() is not None
        assert waiter.followed()[0] == holder.leases.identity  # it knows whom it follows
        assert not waiter.leases.holds(name)

        # the holder stops cleanly: it releases, and the other takes over at once
        stopped_at = time.monotonic()
        holder.stop()
        assert _holder(api, namespace, name) in ("", waiter.leases.identity)
        wait_for(
            lambda: waiter.leases.holds(name), RENEW_S + 5, "the waiting controller to take over"
        )
        took = time.monotonic() - stopped_at
        assert _holder(api, namespace, name) == waiter.leases.identity
        lease = api.get_object("Lease", namespace, lease_name(name))
        assert lease["spec"]["leaseTransitions"] == 1
        assert lease["metadata"]["ownerReferences"][0]["name"] == name

        # and it finishes the campaign, every trial recorded once
        wait_for(lambda: not threads[[first, second].index(waiter)].is_alive(), 300, "completion")
        recorded = records(api, namespace, name)
        assert set(recorded) == planned, (set(recorded) ^ planned, took)
        status = api.get_campaign(namespace, name)["status"]
        assert (status["phase"], status["done"], status["total"]) == (
            "Completed",
            len(planned),
            len(planned),
        )
    finally:
        for controller in (first, second):
            controller.stop()


def test_run_follows_the_chart_controller_and_takes_over_when_it_dies(
    api: KubeApi,  # noqa: F811
    cluster: Any,
    namespace: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """``trainbed run --backend kubernetes`` while ``trainbed controller`` (as the chart runs it)
    holds the campaign: run follows its progress; the controller is SIGKILLed (no release), and
    run takes the campaign over once the lease has lapsed, and finishes it."""
    spec = simulated_campaign(
        "follow",
        [{"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]}],
        trials=12,
        concurrency=2,
        duration="3s",
        cleanup="keep",
        image="trainbed:test",
    )
    (tmp_path / "follow.yaml").write_text(
        yaml.safe_dump(spec.model_dump(mode="json", by_alias=True, exclude_none=True))
    )
    api.apply_campaign(campaign_object(spec, namespace))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"}
    cli = [sys.executable, "-m", "trainbed.orchestrator.cli"]
    chart_like = subprocess.Popen([*cli, "controller", "-n", namespace], env=env)
    try:
        holder = wait_for(lambda: _holder(api, namespace, "follow"), 120, "the controller's lease")
        run = subprocess.Popen(
            [*cli, "run", str(tmp_path / "follow.yaml"), "--backend", "kubernetes"]
            + ["-n", namespace, "--out", str(tmp_path / "out"), "--no-analyze"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(lambda: len(records(api, namespace, "follow")) >= 4, 120, "four recorded trials")
        chart_like.kill()
        killed = time.monotonic()
        out, _ = run.communicate(timeout=300)
    finally:
        chart_like.kill()
    assert run.returncode == 0, out
    assert f"driven by the controller that holds its lease ({holder})" in out, out
    assert f"took it over from {holder}" in out, out
    assert "no tar archive" in out, out  # kwok runs no reader: said in one line, no traceback
    lease = api.get_object("Lease", namespace, lease_name("follow"))
    assert lease["spec"]["leaseTransitions"] == 1 and lease["spec"]["holderIdentity"] == ""
    assert time.monotonic() - killed >= LEASE_S - RENEW_S  # it waited the lease out
    planned = {t.trial_id for t in plan_campaign(spec).trials}
    assert set(records(api, namespace, "follow")) == planned
    jobs = api.list_objects("Job", namespace, "trainbed.io/campaign=follow")
    assert len(jobs) == len(planned)  # each trial's Job once, across the two controllers


def test_a_terminated_controller_releases_its_lease(
    api: KubeApi,  # noqa: F811
    cluster: Any,
    namespace: str,  # noqa: F811
) -> None:
    """SIGTERM (a controller pod deleted, a rollout) stops ``trainbed controller`` cleanly: its
    leases are released, so the next controller starts at once instead of waiting them out."""
    spec = simulated_campaign(
        "term",
        [{"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]}],
        trials=2,
        concurrency=1,
        duration="600s",
        cleanup="keep",
        image="trainbed:test",
    )
    api.apply_campaign(campaign_object(spec, namespace))
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "controller", "-n", namespace], env=env
    )
    try:
        wait_for(lambda: _holder(api, namespace, "term"), 120, "the controller's lease")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        proc.kill()
    assert _holder(api, namespace, "term") == ""
