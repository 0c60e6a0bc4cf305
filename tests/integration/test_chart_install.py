"""The Helm chart installs into a restricted namespace, and its Role holds exactly the
controller's verbs: RBAC answers from the real API server."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.cluster import launcher

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
CHART = Path(__file__).resolve().parents[2] / "charts" / "trainbed"

ALLOWED = [
    ("get", "leases.coordination.k8s.io"),
    ("create", "leases.coordination.k8s.io"),
    ("update", "leases.coordination.k8s.io"),
    ("get", "campaigns.trainbed.io"),
    ("list", "campaigns.trainbed.io"),
    ("watch", "campaigns.trainbed.io"),
    ("patch", "campaigns.trainbed.io"),
    ("patch", "campaigns.trainbed.io/status"),
    ("create", "jobs.batch"),
    ("delete", "jobs.batch"),
    ("watch", "jobs.batch"),
    ("list", "pods"),
    ("watch", "pods"),
    ("get", "pods/log"),
    ("create", "services"),
    ("delete", "services"),
    ("create", "configmaps"),
    ("patch", "configmaps"),
    ("delete", "configmaps"),
    ("create", "events"),
]
DENIED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("create", "pods"),
    ("delete", "pods"),
    ("create", "pods/exec"),
    ("update", "jobs.batch"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "campaigns.trainbed.io"),
    ("delete", "persistentvolumeclaims"),
    ("delete", "leases.coordination.k8s.io"),
]


@pytest.fixture
def release(cluster: launcher.Cluster) -> Iterator[tuple[str, str]]:
    namespace = f"chart-{uuid.uuid4().hex[:6]}"
    configuration = client.Configuration()
    config.load_kube_config(str(cluster.kubeconfig), client_configuration=configuration)
    core = client.CoreV1Api(client.ApiClient(configuration))
    core.create_namespace(
        {
            "metadata": {
                "name": namespace,
                "labels": {"pod-security.kubernetes.io/enforce": "restricted"},
            }
        }
    )
    helm = str(launcher.BIN / "helm")
    done = subprocess.run(
        [
            helm,
            "install",
            "tb",
            str(CHART),
            "--namespace",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--set",
            "results.storageClass=manual",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    yield namespace, "tb-trainbed"
    subprocess.run(
        [
            helm,
            "uninstall",
            "tb",
            "--namespace",
            namespace,
            "--kubeconfig",
            str(cluster.kubeconfig),
        ],
        capture_output=True,
        timeout=120,
    )
    core.delete_namespace(namespace)


def _kubectl(cluster: launcher.Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [launcher.kubectl_path(), "--kubeconfig", str(cluster.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_helm_install_and_least_privilege(
    cluster: launcher.Cluster, release: tuple[str, str]
) -> None:
    namespace, _ = release
    accounts = _kubectl(
        cluster,
        "get",
        "serviceaccounts",
        "-n",
        namespace,
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ).stdout.split()
    account = next(a for a in accounts if a != "default")
    who = f"--as=system:serviceaccount:{namespace}:{account}"
    for verb, resource in ALLOWED:
        out = _kubectl(cluster, "auth", "can-i", verb, resource, "-n", namespace, who)
        assert out.stdout.strip() == "yes", (verb, resource, out.stdout, out.stderr)
    for verb, resource in DENIED:
        out = _kubectl(cluster, "auth", "can-i", verb, resource, "-n", namespace, who)
        assert out.stdout.strip() == "no", (verb, resource, out.stdout)
    other = _kubectl(cluster, "auth", "can-i", "list", "jobs.batch", "-n", "default", who)
    assert other.stdout.strip() == "no", "the Role is namespaced"

    # the controller Deployment's pod is admitted under the restricted Pod Security Standard
    deadline = time.time() + 60
    while time.time() < deadline:
        pods = _kubectl(
            cluster,
            "get",
            "pods",
            "-n",
            namespace,
            "-l",
            "app.kubernetes.io/component=controller",
            "--no-headers",
        ).stdout
        if pods.strip():
            break
        time.sleep(0.5)
    else:
        events = _kubectl(cluster, "get", "events", "-n", namespace).stdout
        raise AssertionError(f"no controller pod was admitted:\n{events}")
