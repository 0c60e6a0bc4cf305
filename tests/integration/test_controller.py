"""The Campaign controller against a real control plane (kwok nodes simulate the pods).

The controller runs out of cluster, because kwok nodes run no containers: each pod's simulated
duration comes from an annotation the campaign sets (spec.kubernetes.pod_annotations).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.campaign_crd import install_campaign_crd
from tests.cluster.kwok_volume import bound_results_volume, volume_name
from tests.cluster.simulated import SIM_DURATION
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.controller import Controller
from trainbed.orchestrator.kube.control.record_store import RecordStore
from trainbed.orchestrator.kube.verbs.commands import campaign_object
from trainbed.orchestrator.plan.parse import parse_campaign

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
SEED001 = ROOT / "experiments" / "fmnist-2k1.yaml"


@pytest.fixture(scope="module")
def api(cluster: Any) -> KubeApi:
    api = KubeApi.from_environment(str(cluster.kubeconfig))
    install_campaign_crd(api)
    return api


@pytest.fixture
def namespace(api: KubeApi) -> Iterator[str]:
    """A fresh namespace under the restricted Pod Security Standard, with a bound results PVC."""
    name = f"tb-{uuid.uuid4().hex[:8]}"
    api.core.create_namespace(
        {
            "metadata": {
                "name": name,
                "labels": {
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/enforce-version": "latest",
                },
            }
        }
    )
    bound_results_volume(api, name)
    yield name
    api.core.delete_namespace(name)
    api.core.delete_persistent_volume(volume_name(name))


def seed001(
    namespace: str,
    *,
    duration: str = "1s",
    concurrency: int = 8,
    name: str = "fmnist-2k1",
    **kube: Any,
) -> dict[str, Any]:
    data = yaml.safe_load(SEED001.read_text())
    data["metadata"]["name"] = name
    data["spec"]["execution"]["concurrency"] = concurrency
    data["spec"]["execution"]["trial_timeout_s"] = 300
    data["spec"]["kubernetes"] = {
        "image": "trainbed:test",
        "pod_annotations": {SIM_DURATION: duration},
        **kube,
    }
    return campaign_object(parse_campaign(data), namespace)


def _kubectl(cluster: Any, *args: str) -> str:
    return subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


def _trainbed(cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _run_controller(
    api: KubeApi, namespace: str, name: str, timeout: float = 300, results_root: Path | None = None
) -> None:
    controller = Controller(api, namespace, only=name, results_root=results_root).start()
    finished = threading.Event()

    def target() -> None:
        controller.run(until_done=True)
        if not controller.stopping.is_set():  # it returned because the campaign is done
            finished.set()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    controller.stop()
    assert finished.is_set(), "the campaign did not complete in time"


def records(api: KubeApi, namespace: str, name: str) -> dict[str, dict[str, Any]]:
    """Every trial's record, from the campaign's records ConfigMaps."""
    return RecordStore(api, namespace, name, chunks={}).load()


def _jobs(api: KubeApi, namespace: str, name: str) -> list[Any]:
    return api.batch.list_namespaced_job(
        namespace, label_selector=f"trainbed.io/campaign={name}"
    ).items


def test_controller_drives_seed001_to_completion(
    api: KubeApi, cluster: Any, namespace: str
) -> None:
    obj = seed001(namespace)
    api.apply_campaign(obj)
    name = obj["metadata"]["name"]
    seen_progress: list[str] = []

    def watch_columns() -> None:
        for _ in range(200):
            out = _kubectl(cluster, "get", "campaigns", "-n", namespace, "--no-headers")
            seen_progress.append(out)
            if "Completed" in out:
                return
            time.sleep(0.5)

    watcher = threading.Thread(target=watch_columns, daemon=True)
    watcher.start()
    _run_controller(api, namespace, name)
    watcher.join(30)

    status = api.get_campaign(namespace, name)["status"]
    assert status["phase"] == "Completed"
    assert status["total"] == 32 and status["done"] == 32 and status["failed"] == 0
    assert "trials" not in status, "per-trial records live outside the Campaign"
    entries = records(api, namespace, name)
    assert len(entries) == 32
    for trial_id, entry in entries.items():
        assert entry["status"] == "succeeded", (trial_id, entry)
        for stamp in ("created", "scheduled", "started", "finished"):
            assert entry[stamp], (trial_id, stamp, entry)
        assert entry["created"] <= entry["scheduled"] <= entry["finished"]
    jobs = _jobs(api, namespace, name)
    assert len(jobs) == 32
    assert all(
        any(c.type == "Complete" and c.status == "True" for c in j.status.conditions) for j in jobs
    )
    # kubectl shows progress through the printer columns while it runs, and the pods by label
    header = _kubectl(cluster, "get", "campaigns", "-n", namespace)
    assert header.split()[:9] == [
        "NAME",
        "PHASE",
        "DONE",
        "FAILED",
        "QUEUED",
        "RUNNING",
        "TOTAL",
        "BLOCKED",
        "AGE",
    ]
    assert any(line.split()[1] == "Running" for line in seen_progress if line.strip())
    pods = _kubectl(
        cluster,
        "get",
        "pods",
        "-n",
        namespace,
        "-l",
        f"trainbed.io/campaign={name}",
        "--no-headers",
    )
    assert len(pods.strip().splitlines()) == 64, "32 trials x 2 ranks, all admitted"
    # trainbed status: counts, --json, and one trial's record (a wrong ID is one line, exit 2)
    shown = _trainbed(cluster, "status", name, "-n", namespace)
    assert shown.returncode == 0 and "Completed, 32/32 recorded" in shown.stdout, shown.stdout
    as_json = json.loads(_trainbed(cluster, "status", name, "-n", namespace, "--json").stdout)
    assert as_json["done"] == 32 and as_json["inFlight"] == [] and "trials" not in as_json
    some = sorted(entries)[0]
    record = _trainbed(cluster, "status", name, "-n", namespace, "--trial", some, "--json")
    assert json.loads(record.stdout)["status"] == "succeeded", record.stdout
    wrong = _trainbed(cluster, "status", name, "-n", namespace, "--trial", "tnope")
    assert wrong.returncode == 2 and "no trial 'tnope'" in wrong.stderr, wrong.stderr


def test_restart_mid_campaign_leaves_no_duplicates(
    api: KubeApi, cluster: Any, namespace: str
) -> None:
    obj = seed001(namespace, duration="2s", concurrency=4, name="restart")
    api.apply_campaign(obj)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "controller", "--namespace", namespace],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            status = (api.get_campaign(namespace, "restart") or {}).get("status") or {}
            if status.get("done", 0) >= 6:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the controller made no progress")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mid = _jobs(api, namespace, "restart")
    assert 6 <= len(mid) < 32
    _run_controller(api, namespace, "restart")
    jobs = _jobs(api, namespace, "restart")
    names = [j.metadata.name for j in jobs]
    assert len(names) == len(set(names)) == 32
    uids_before = {j.metadata.name: j.metadata.uid for j in mid}
    uids_after = {j.metadata.name: j.metadata.uid for j in jobs}
    assert all(uids_after[n] == uid for n, uid in uids_before.items()), "no Job was recreated"
    status = api.get_campaign(namespace, "restart")["status"]
    assert status["done"] == 32 and status["phase"] == "Completed"


def test_exit_137_is_recorded_as_oom_killed_and_the_campaign_goes_on(
    api: KubeApi, cluster: Any, namespace: str, tmp_path: Path
) -> None:
    obj = seed001(namespace, duration="6s", concurrency=32, name="oom")
    api.apply_campaign(obj)
    victim: dict[str, str] = {}
    stop = threading.Event()

    def inject() -> None:
        """Mark the first trial's pods to exit 137 as soon as they exist (kwok acts on it)."""
        while not stop.is_set():
            pods = api.core.list_namespaced_pod(
                namespace, label_selector="trainbed.io/campaign=oom"
            )
            for pod in pods.items:
                trial = pod.metadata.labels["trainbed.io/trial"]
                victim.setdefault("trial", trial)
                if trial == victim["trial"] and not (pod.metadata.annotations or {}).get(
                    "trainbed.io/sim-exit-code"
                ):
                    api.core.patch_namespaced_pod(
                        pod.metadata.name,
                        namespace,
                        {"metadata": {"annotations": {"trainbed.io/sim-exit-code": "137"}}},
                    )
            time.sleep(0.1)

    injector = threading.Thread(target=inject, daemon=True)
    injector.start()
    try:
        _run_controller(api, namespace, "oom", results_root=tmp_path)
    finally:
        stop.set()
        injector.join(5)
    status = api.get_campaign(namespace, "oom")["status"]
    entries = records(api, namespace, "oom")
    assert entries[victim["trial"]]["status"] == "oom_killed", entries[victim["trial"]]
    others = [e["status"] for t, e in entries.items() if t != victim["trial"]]
    assert others == ["succeeded"] * 31
    assert status["failed"] == 1 and status["done"] == 32
    # with the results volume mounted, the controller leaves the DESIGN.md layout behind and
    # records the OOM kill that the worker could not write itself
    root = tmp_path / "oom"
    assert (root / "campaign.yaml").exists() and (root / "design.csv").exists()
    result = json.loads((root / "trials" / victim["trial"] / "result.json").read_text())
    assert result["status"] == "oom_killed" and result["final_accuracy"] is None
    assert len(list((root / "trials").glob("*/result.json"))) == 32


def test_invalid_campaign_is_reported_in_status_and_parsed_once(
    api: KubeApi, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainbed.orchestrator.kube.control import controller as controller_module

    parses: list[str] = []
    real_parse = controller_module.parse_campaign

    def counting_parse(*args: Any, **kwargs: Any) -> Any:
        parses.append(kwargs.get("source", ""))
        return real_parse(*args, **kwargs)

    monkeypatch.setattr(controller_module, "parse_campaign", counting_parse)
    obj = seed001(namespace, name="invalid")
    obj["spec"]["factors"][0]["target"] = "resources.cpux"
    api.apply_campaign(obj)
    controller = Controller(api, namespace, only="invalid").start()
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            controller.reconcile_once()
            status = (api.get_campaign(namespace, "invalid") or {}).get("status") or {}
            if status.get("phase") == "Invalid":
                break
            time.sleep(0.2)
        for _ in range(5):  # later passes over the same generation do not parse it again
            controller.reconcile_once()
    finally:
        controller.stop()
    assert status["phase"] == "Invalid"
    message = status["conditions"][0]["message"]
    assert "spec.factors[0].target" in message and "cpux" in message
    assert not _jobs(api, namespace, "invalid")
    assert len(parses) == 1, parses
