"""Smoke test of the real node: its taint, label and kubelet settings; the trainbed image under
the restricted Pod Security Standard; DNS for an Indexed Job's pods; the API server from a pod;
``kubectl logs`` and ``exec``; the CPU limit in the pod's cgroup; the bandwidth annotations."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config

from tests.cluster import launcher, realnode
from tests.realnode.conftest import RealNode, unique, wait_for

# The first test pays for the session fixture: builds (cold: many minutes) and the image import.
pytestmark = [pytest.mark.realnode, pytest.mark.timeout(3600)]

TOLERATION = {**realnode.TAINT, "operator": "Equal"}
NODE_SELECTOR = {realnode.LABEL[0]: realnode.LABEL[1]}
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "runAsUser": 1000,
    "seccompProfile": {"type": "RuntimeDefault"},
}


@pytest.fixture(scope="module")
def api(real_node: RealNode) -> client.ApiClient:
    configuration = client.Configuration()
    config.load_kube_config(str(real_node.kubeconfig), client_configuration=configuration)
    return client.ApiClient(configuration)


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = unique("realnode")
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    client.CoreV1Api(api).create_namespace({"metadata": {"name": name, "labels": labels}})
    yield name
    client.CoreV1Api(api).delete_namespace(name, grace_period_seconds=0)


def pod_spec(image: str, args: list[str], **extra: Any) -> dict:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "args": args,
        "securityContext": RESTRICTED,
        **extra,
    }
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "nodeSelector": NODE_SELECTOR,
        "tolerations": [TOLERATION],
        "terminationGracePeriodSeconds": 1,
        "containers": [container],
    }


def python(code: str) -> dict:
    return {"command": ["python", "-c", code]}


def run_pod(api: client.ApiClient, namespace: str, name: str, spec: dict, **meta: Any) -> str:
    """Create the pod, wait until it ends, and return its log; fails unless it succeeded."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, {"metadata": {"name": name, **meta}, "spec": spec})

    def ended() -> str | None:
        phase = core.read_namespaced_pod(name, namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for(ended, 180, f"pod {name} to end")
    log = kubectl(api, "logs", "-n", namespace, name)
    assert phase == "Succeeded", log
    return log


def kubectl(api: client.ApiClient, *args: str) -> str:
    """kubectl of the pinned release, on the session's cluster (the fixture sets KUBECONFIG)."""
    done = subprocess.run(
        [launcher.kubectl_path(), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_node_is_ready_tainted_and_labelled(api: client.ApiClient) -> None:
    node = client.CoreV1Api(api).read_node(realnode.NODE_NAME)
    assert node.metadata.labels[realnode.LABEL[0]] == realnode.LABEL[1]
    taints = [(t.key, t.value, t.effect) for t in node.spec.taints or []]
    assert (realnode.TAINT["key"], realnode.TAINT["value"], realnode.TAINT["effect"]) in taints
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"


def test_kubelet_needs_credentials(api: client.ApiClient, real_node: RealNode) -> None:
    """Webhook authentication and authorization, no anonymous access; the settings that this
    machine needs (cgroup v1, cgroupfs), read back from the kubelet through the API server."""
    raw = kubectl(api, "get", "--raw", f"/api/v1/nodes/{realnode.NODE_NAME}/proxy/configz")
    kubelet = json.loads(raw)["kubeletconfig"]
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    assert kubelet["authentication"]["webhook"]["enabled"] is True
    assert kubelet["authorization"]["mode"] == "Webhook"
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    node = client.CoreV1Api(api).read_node(realnode.NODE_NAME)
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    address = next(a.address for a in node.status.addresses if a.type == "InternalIP")
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with pytest.raises(urllib.error.HTTPError) as err:  # no client certificate, no token
        urllib.request.urlopen(f"https://{address}:{port}/pods", context=context, timeout=10)
    assert err.value.code == 401
    err.value.close()


def test_trainbed_help_runs_restricted(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    """The image's entry point, as uid 1000 under the restricted PSS; kubectl logs reads it."""
    log = run_pod(api, namespace, "help", pod_spec(real_node.image, ["--help"]))
    assert "Usage" in log and "trainbed" in log


def test_indexed_job_pods_find_each_other_by_name(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    """Pod 1 resolves ``<job>-0.<service>`` (as MASTER_ADDR does) and connects to pod 0."""
    core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
    job = "ddp"
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "ranks"},
            "spec": {
                "clusterIP": "None",
                "publishNotReadyAddresses": True,
                "selector": {"batch.kubernetes.io/job-name": job},
                "ports": [{"name": "rdv", "port": 29500}],
            },
        },
    )
    code = """
import os, socket, sys, time
if os.environ["JOB_COMPLETION_INDEX"] == "0":
    server = socket.create_server(("", 29500))
    server.settimeout(150)
    conn, peer = server.accept()
    print("rank 0 got", conn.recv(64).decode(), "from", peer[0])
    sys.exit(0)
deadline = time.time() + 150
while True:
    try:
        address = socket.gethostbyname("ddp-0.ranks")
        socket.create_connection((address, 29500), timeout=5).sendall(b"hello")
        break
    except OSError as err:
        if time.time() > deadline:
            raise
        time.sleep(1)
print("rank 1 resolved ddp-0.ranks to", address)
"""
    spec = pod_spec(real_node.image, [], **python(code))
    spec["subdomain"] = "ranks"
    batch.create_namespaced_job(
        namespace,
        {
            "metadata": {"name": job},
            "spec": {
                "completions": 2,
                "parallelism": 2,
                "completionMode": "Indexed",
                "backoffLimit": 0,
                "template": {"spec": spec},
            },
        },
    )

    def finished() -> str | None:
        for condition in batch.read_namespaced_job(job, namespace).status.conditions or []:
            if condition.type in ("Complete", "Failed") and condition.status == "True":
                return condition.type
        return None

    outcome = wait_for(finished, 240, "the Indexed Job")
    logs = kubectl(api, "logs", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job}")
    assert outcome == "Complete", logs
    assert "rank 1 resolved ddp-0.ranks to 10.244.0." in logs
    assert "rank 0 got hello" in logs


def test_pod_reaches_the_api_server(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    """In-cluster config (KUBERNETES_SERVICE_HOST=10.96.0.1) and a service-account token."""
    code = (
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        "print('server', client.VersionApi().get_code().git_version)\n"
    )
    spec = pod_spec(real_node.image, [], **python(code))
    spec["automountServiceAccountToken"] = True
    log = run_pod(api, namespace, "api", spec)
    assert f"server {launcher.K8S_VERSION}" in log


def test_cpu_limit_is_in_the_pod_cgroup(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    code = (
        "import pathlib\n"
        "v1 = pathlib.Path('/sys/fs/cgroup/cpu/cpu.cfs_quota_us')\n"
        "v2 = pathlib.Path('/sys/fs/cgroup/cpu.max')\n"
        "print('quota', (v1 if v1.exists() else v2).read_text().split()[0])\n"
    )
    limits = {"cpu": "500m", "memory": "256Mi"}
    spec = pod_spec(
        real_node.image, [], resources={"requests": limits, "limits": limits}, **python(code)
    )
    assert "quota 50000" in run_pod(api, namespace, "cpu", spec)


def test_bandwidth_annotations_and_exec(
    api: client.ApiClient, namespace: str, real_node: RealNode
) -> None:
    """The CNI chain's bandwidth plugin accepts the annotations (the pod starts, and a tbf qdisc
    shapes it on the host); ``kubectl exec`` reaches the running pod."""
    core = client.CoreV1Api(api)
    annotations = {
        "kubernetes.io/ingress-bandwidth": "20M",
        "kubernetes.io/egress-bandwidth": "20M",
    }
    spec = pod_spec(real_node.image, [], **python("import time; time.sleep(600)"))
    core.create_namespaced_pod(
        namespace, {"metadata": {"name": "shaped", "annotations": annotations}, "spec": spec}
    )
    wait_for(
        lambda: core.read_namespaced_pod("shaped", namespace).status.phase == "Running",
        120,
        "the shaped pod to run",
    )
    qdiscs = subprocess.run(["tc", "qdisc", "show"], capture_output=True, text=True).stdout
    assert "tbf" in qdiscs and "20Mbit" in qdiscs, qdiscs
    out = kubectl(api, "exec", "-n", namespace, "shaped", "--", "python", "-c", "print(6 * 7)")
    assert out.strip() == "42"
