"""A campaign that cannot progress says why, within 30 s: on the Campaign (its Blocked
condition), in ``trainbed status`` and in ``trainbed run``'s output. Real control plane, kwok
nodes; each cause is produced for real:

- no StorageClass: the results PVC names none and the cluster has no default, so it stays
  Pending (and the pods with it);
- an image that cannot be pulled: kwok pulls nothing, so a second kwok, with its own node and a
  pod Stage that reports the kubelet's ``ImagePullBackOff`` waiting state, runs the trial's pod
  (only that node has the GPU the trial asks for, so only it can take the pod);
- an unschedulable trial: a CPU level no node has.
"""

# ruff: noqa: F811 (the shared fixtures are imported from test_controller)
from __future__ import annotations

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

from tests.cluster import launcher
from tests.integration.test_controller import api, namespace, seed001  # noqa: F401
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.controller import Controller
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
#: The issue's bound: run, status and the Campaign name the cause within this.
SAYS_WHY_S = 30.0


def _blocked_within(api: KubeApi, ns: str, name: str, timeout: float) -> CampaignStatus:
    """Reconcile in this process until the Campaign's Blocked condition is True."""
    controller = Controller(api, ns, only=name).start()
    began = time.monotonic()
    try:
        while time.monotonic() - began < timeout:
            controller.reconcile_once()
            obj = api.get_campaign(ns, name) or {}
            status = CampaignStatus.from_storage(obj.get("status"))
            if status.blocked is not None:
                return status
            time.sleep(0.5)
    finally:
        controller.stop()
    raise AssertionError(f"no Blocked condition within {timeout:g} s: {obj.get('status')}")


def _cli(cluster: Any, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "250"}
    return subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _run_says(cluster: Any, file: Path, ns: str, out: Path, words: str) -> float:
    """``trainbed run --backend kubernetes``: seconds until its output names ``words``."""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig), "COLUMNS": "250"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "trainbed.orchestrator.cli",
            "run",
            str(file),
            "--backend",
            "kubernetes",
            "-n",
            ns,
            "--out",
            str(out),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    began = time.monotonic()
    seen: list[str] = []
    said = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)
            if words in line:
                said.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if said.wait(SAYS_WHY_S + 15):
            return time.monotonic() - began
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(5)
        assert proc.stdout is not None
        proc.stdout.close()
    raise AssertionError(f"run never said {words!r}:\n{''.join(seen)}")


def _write(tmp_path: Path, obj: dict[str, Any]) -> Path:
    file = tmp_path / "campaign.yaml"
    data = {k: v for k, v in obj.items() if k != "metadata"}
    data["metadata"] = {"name": obj["metadata"]["name"]}
    file.write_text(yaml.safe_dump(data))
    return file


@pytest.fixture
def bare_namespace(api: KubeApi) -> Iterator[str]:  # noqa: F811
    """A namespace whose results PVC names no StorageClass and has no volume: it stays
    Pending (the test cluster has no StorageClass at all, so none is the default)."""
    name = f"tb-{uuid.uuid4().hex[:8]}"
    api.core.create_namespace({"metadata": {"name": name}})
    api.core.create_namespaced_persistent_volume_claim(
        name,
        {
            "metadata": {"name": "trainbed-results"},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    yield name
    api.core.delete_namespace(name)


def test_no_storage_class(api: KubeApi, cluster: Any, bare_namespace: str, tmp_path: Path) -> None:  # noqa: F811
    from kubernetes import client

    classes = client.StorageV1Api(api.api_client).list_storage_class()
    assert not classes.items, "this test needs a cluster without StorageClasses"
    obj = seed001(bare_namespace, name="nosc")
    file = _write(tmp_path, obj)
    took = _run_says(cluster, file, bare_namespace, tmp_path / "out", "ResultsVolumePending")
    assert took < SAYS_WHY_S, took
    status = CampaignStatus.from_storage((api.get_campaign(bare_namespace, "nosc") or {})["status"])
    assert status.blocked is not None and status.blocked.reason == "ResultsVolumePending"
    assert "names no StorageClass" in status.blocked.message
    shown = _cli(cluster, "status", "nosc", "-n", bare_namespace)
    assert shown.returncode == 0 and "names no StorageClass" in shown.stdout, shown.stdout


def test_unschedulable_trial(api: KubeApi, cluster: Any, namespace: str) -> None:  # noqa: F811
    obj = seed001(namespace, name="huge")
    obj["spec"]["factors"][0]["levels"] = ["100", "200"]  # no kwok node has 100 CPUs
    api.apply_campaign(obj)
    began = time.monotonic()
    status = _blocked_within(api, namespace, "huge", SAYS_WHY_S)
    assert time.monotonic() - began < SAYS_WHY_S
    assert status.blocked is not None and status.blocked.reason == "Unschedulable"
    assert "Insufficient cpu" in status.blocked.message, status.blocked.message
    assert status.phase == "Running" and status.done == 0
    shown = _cli(cluster, "status", "huge", "-n", namespace)
    assert "Insufficient cpu" in shown.stdout, shown.stdout
    got = _kubectl_columns(cluster, namespace)
    assert "Unschedulable" in got, got


def _kubectl_columns(cluster: Any, ns: str) -> str:
    return subprocess.run(
        [
            launcher.kubectl_path(),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "get",
            "campaigns",
            "-n",
            ns,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout


IMAGE = "registry.invalid/trainbed:missing"


def _image_pull_stages(path: Path) -> Path:
    """The cluster's node Stages and pod deletion, plus one pod Stage: a new pod is reported
    the way a kubelet reports an image it cannot pull, and stays so."""
    docs = list(yaml.safe_load_all((ROOT / "tests/cluster/kwok-stages.yaml").read_text()))
    kept = [
        d
        for d in docs
        if d["spec"]["resourceRef"]["kind"] == "Node" or d["metadata"]["name"] == "pod-delete"
    ]
    kept.append(
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "pod-image-pull-backoff"},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": "Pod"},
                "selector": {
                    "matchExpressions": [
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                        {"key": ".status.podIP", "operator": "DoesNotExist"},
                    ]
                },
                "delay": {"durationMilliseconds": 100},
                "next": {
                    "statusTemplate": (
                        "{{ $now := Now }}\n"
                        "conditions:\n"
                        '- type: Initialized\n  status: "True"\n'
                        "  lastTransitionTime: {{ $now | Quote }}\n"
                        '- type: Ready\n  status: "False"\n  reason: ContainersNotReady\n'
                        "  lastTransitionTime: {{ $now | Quote }}\n"
                        "containerStatuses:\n"
                        "{{ range .spec.containers }}\n"
                        "- image: {{ .image | Quote }}\n  name: {{ .name | Quote }}\n"
                        "  ready: false\n  restartCount: 0\n  started: false\n"
                        "  state:\n    waiting:\n      reason: ImagePullBackOff\n"
                        '      message: {{ printf "Back-off pulling image %q" .image | Quote }}\n'
                        "{{ end }}\n"
                        "hostIP: {{ NodeIPWith .spec.nodeName | Quote }}\n"
                        'podIP: {{ PodIPWith .spec.nodeName false ( or .metadata.uid "" ) '
                        '( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}\n'
                        "phase: Pending\n"
                    )
                },
            },
        }
    )
    path.write_text(yaml.safe_dump_all(kept, sort_keys=False))
    return path


@pytest.fixture
def image_pull_node(api: KubeApi, cluster: Any, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    """A node with one GPU, run by a kwok of its own that reports image pulls as failing."""
    name = f"pull-{uuid.uuid4().hex[:6]}"
    node = launcher.node_manifest(name, "16", "64Gi")
    node["metadata"]["annotations"]["kwok.x-k8s.io/node"] = name
    node["metadata"]["labels"]["type"] = "image-pull"
    for key in ("capacity", "allocatable"):
        node["status"][key]["nvidia.com/gpu"] = "1"
    stages = _image_pull_stages(tmp_path / "stages.yaml")
    log = (tmp_path / "kwok.log").open("wb")
    proc = subprocess.Popen(
        [
            str(launcher.BIN / "kwok"),
            f"--kubeconfig={cluster.kubeconfig}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node={name}",
            "--cidr=10.200.0.1/16",
            "--node-ip=10.200.0.1",
            f"--config={stages}",
            "--server-address=127.0.0.1:0",
            "--node-lease-duration-seconds=40",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api.core.create_node(node)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            got = api.core.read_node(name)
            if any(c.type == "Ready" and c.status == "True" for c in got.status.conditions or []):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the image-pull node never became Ready: {tmp_path / 'kwok.log'}")
        yield name
    finally:
        api.core.delete_node(name)
        proc.terminate()
        proc.wait(30)
        log.close()


def test_missing_image(
    api: KubeApi,
    cluster: Any,
    namespace: str,
    image_pull_node: str,  # noqa: F811
) -> None:
    obj = seed001(namespace, name="noimage", concurrency=1)
    obj["spec"]["kubernetes"]["image"] = IMAGE
    obj["spec"]["trial"]["resources"]["gpu"] = 1
    obj["spec"]["trial"]["workload"]["parallelism"] = 1
    api.apply_campaign(obj)
    began = time.monotonic()
    status = _blocked_within(api, namespace, "noimage", SAYS_WHY_S)
    assert time.monotonic() - began < SAYS_WHY_S
    assert status.blocked is not None and status.blocked.reason == "ImagePullBackOff"
    assert IMAGE in status.blocked.message, status.blocked.message
    pods = api.core.list_namespaced_pod(namespace, label_selector="trainbed.io/campaign=noimage")
    assert {p.spec.node_name for p in pods.items} == {image_pull_node}
    shown = _cli(cluster, "status", "noimage", "-n", namespace, "--json")
    assert "ImagePullBackOff" in shown.stdout
