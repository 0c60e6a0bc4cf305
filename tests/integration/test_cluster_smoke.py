"""Smoke test of the control plane itself: admission, scheduling onto kwok nodes, Job semantics,
RBAC, and the simulated exit codes that the controller tests rely on."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster import launcher
from tests.cluster.simulated import SIM_DURATION
from tests.cluster.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster"

RESTRICTED_POD: dict[str, Any] = {
    "automountServiceAccountToken": False,
    "securityContext": {
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    },
    "containers": [
        {
            "name": "main",
            "image": "busybox",
            "command": ["true"],
            "securityContext": {
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        }
    ],
}


@pytest.fixture(scope="module")
def api(cluster: launcher.Cluster) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    yield name
    client.CoreV1Api(api).delete_namespace(name)


def test_indexed_job_runs_on_kwok_nodes(api: client.ApiClient, namespace: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "indexed"},
            "spec": {
                "completions": 2,
                "parallelism": 2,
                "completionMode": "Indexed",
                "template": {
                    "metadata": {"annotations": {SIM_DURATION: "2s"}},
                    "spec": {**RESTRICTED_POD, "restartPolicy": "Never"},
                },
            },
        },
    )

    def running() -> list[Any]:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=indexed").items
        return pods if len(pods) == 2 and all(p.status.phase == "Running" for p in pods) else []

    pods = wait_for(running, 60, "two Running pods")
    nodes = {n.metadata.name for n in core.list_node(label_selector="type=kwok").items}
    assert all(p.spec.node_name in nodes for p in pods), "the scheduler bound them to kwok nodes"
    indexes = sorted(
        p.metadata.annotations["batch.kubernetes.io/job-completion-index"] for p in pods
    )
    assert indexes == ["0", "1"]

    def complete() -> bool:
        job = batch.read_namespaced_job("indexed", namespace)
        return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])

    wait_for(complete, 60, "the Job to complete")
    phases = {
        p.status.phase
        for p in core.list_namespaced_pod(namespace, label_selector="job-name=indexed").items
    }
    assert phases == {"Succeeded"}


def test_privileged_pod_is_rejected_by_pod_security(api: client.ApiClient, namespace: str) -> None:
    pod = {
        "metadata": {"name": "privileged"},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "securityContext": {"privileged": True}}
            ]
        },
    }
    with pytest.raises(ApiException) as info:
        client.CoreV1Api(api).create_namespaced_pod(namespace, pod)
    assert info.value.status == 403
    assert "violates PodSecurity" in info.value.body


def test_rbac_answers_can_i(
    api: client.ApiClient, cluster: launcher.Cluster, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )
    who = f"--as=system:serviceaccount:{namespace}:reader"

    def can_i(*args: str) -> str:
        proc = subprocess.run(
            [
                launcher.kubectl_path(),
                "--kubeconfig",
                str(cluster.kubeconfig),
                "auth",
                "can-i",
                *args,
                "-n",
                namespace,
                who,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.stdout.strip()

    assert wait_for(lambda: can_i("list", "pods") == "yes", 10, "RBAC to allow list pods")
    assert can_i("get", "secrets") == "no"
    assert can_i("create", "pods") == "no"


def test_exit_code_annotation_fails_the_pod_with_oomkilled(
    api: client.ApiClient, namespace: str
) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": "oom"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"annotations": {"trainbed.io/sim-exit-code": "137"}},
                    "spec": {**RESTRICTED_POD, "restartPolicy": "Never"},
                },
            },
        },
    )

    def failed() -> Any:
        pods = core.list_namespaced_pod(namespace, label_selector="job-name=oom").items
        return [p for p in pods if p.status.phase == "Failed"]

    pod = wait_for(failed, 60, "the pod to fail")[0]
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 137 and terminated.reason == "OOMKilled"


def _script(state: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINBED_CLUSTER_DIR": str(state)}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=150,
        env=env,
    )


@pytest.mark.timeout(240)
def test_scripts_cluster_up_is_idempotent_and_down_leaves_nothing(tmp_path: Path) -> None:
    """A second cluster beside the session's: its own state folder, ports and processes."""
    state = tmp_path / "cluster"
    args = ["up", "--nodes", "2", "--node-cpu", "3", "--node-memory", "5Gi"]
    pids: list[int] = []
    first = _script(state, *args)
    try:
        assert first.returncode == 0, first.stderr[-3000:]
        kubeconfig = first.stdout.strip().splitlines()[-1]
        assert kubeconfig == str(state / "kubeconfig")
        pids = [int(p.read_text()) for p in (state / "pids").iterdir()]
        assert len(pids) == 5 and all(launcher._alive(p) for p in pids)
        server = json.loads((state / "cluster.json").read_text())["server"]
        assert server.startswith("https://127.0.0.1:")

        again = _script(state, *args)  # a no-op that prints the same kubeconfig
        assert again.returncode == 0 and again.stdout.strip().splitlines()[-1] == kubeconfig
        assert json.loads((state / "cluster.json").read_text())["server"] == server
        assert sorted(int(p.read_text()) for p in (state / "pids").iterdir()) == sorted(pids)
        printed = _script(state, "kubeconfig")
        assert printed.returncode == 0 and printed.stdout.strip() == kubeconfig

        nodes = subprocess.run(
            [launcher.kubectl_path(), "--kubeconfig", kubeconfig, "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        capacity = [n["status"]["capacity"] for n in json.loads(nodes.stdout)["items"]]
        assert [(c["cpu"], c["memory"]) for c in capacity] == [("3", "5Gi")] * 2
    finally:
        stopped = _script(state, "down")
    assert stopped.returncode == 0, stopped.stderr
    assert not any(launcher._alive(p) for p in pids), "down left a process behind"
    assert not state.exists()
    gone = _script(state, "kubeconfig")
    assert gone.returncode == 1 and "no cluster is running" in gone.stderr
