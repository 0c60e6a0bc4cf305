"""``scripts/cluster up --kueue``: a real Kueue manager beside the test control plane.

Kueue is built from its Go module (``go install sigs.k8s.io/kueue/cmd/kueue@VERSION``, its own
GOBIN: its Kubernetes libraries are not the tools module's) into ``kueue-<version>/bin`` of the
cache, with the module's CRDs and webhook configurations copied beside it. It runs as a process
of the cluster's state dir, like the other components, with the admin kubeconfig, and is
installed as its own kustomization would install it, with three changes a host process needs:

* its webhook Service ``kueue-webhook-service`` has no selector; an EndpointSlice points it at
  this machine's own address (not loopback, which an EndpointSlice may not hold), where the
  manager serves, and the API server (``--enable-aggregator-routing``) calls that address;
* its configuration integrates ``batch/job`` only, with leader election and the metrics
  endpoint off, and the visibility API server off (it needs API aggregation);
* of its webhooks, only the Job and Kueue-kind ones are registered (the others would call
  paths this configuration does not serve), and the Job ones select only Jobs that carry the
  queue label, so that the other tests sharing the cluster create Jobs while Kueue is stopped.
  They keep Kueue's ``failurePolicy: Fail``: a queued Job is refused while Kueue is down, as on
  any cluster.

Kueue's own certificate management stays on: it makes the serving certificate for the Service's
name into its Secret and injects its CA into the webhook configurations and the conversion
webhooks of its CRDs. Where a kubelet would project that Secret into the pod, ``start`` writes
its keys into the manager's certDir.
``stop`` and ``start`` let a test take Kueue away mid-campaign; ``down`` stops it with the rest.
Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.cluster import launcher

VERSION = "v0.17.0"
MODULE = "sigs.k8s.io/kueue"
DIR = launcher.CACHE / f"kueue-{VERSION}"
NAME = "kueue"  # its pid and log file names in the state dir
NAMESPACE = "kueue-system"
SERVICE = "kueue-webhook-service"
SECRET = "kueue-webhook-server-cert"  # where Kueue's rotator keeps its serving certificate
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: The webhooks trainbed needs: batch/v1 Jobs and Kueue's own kinds.
_WEBHOOK_PATHS = ("-batch-v1-job", "-kueue-x-k8s-io-")
#: The CRDs Kueue converts between versions (its kustomization's crd/patches/webhook_in_*).
_CONVERTED = ("localqueues", "clusterqueues", "workloads", "cohorts", "multikueueclusters")


def _log(message: str) -> None:
    print(f"[kueue] {message}", file=sys.stderr, flush=True)


def _module_dir() -> Path:
    out = subprocess.run(
        [launcher._go_binary(), "mod", "download", "-json", f"{MODULE}@{VERSION}"],
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),  # outside any module: nothing is added to a go.mod
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if out.returncode != 0:
        raise launcher.ClusterError(f"go mod download {MODULE}@{VERSION} failed: {out.stderr}")
    return Path(json.loads(out.stdout)["Dir"])


def build() -> Path:
    """The folder with ``kueue``, ``crds/`` and ``webhooks.yaml`` (built once per version)."""
    from tests.cluster import realnode_build

    def install(tmp: Path) -> None:
        realnode_build._timed_go(
            ["install", "-trimpath", "-ldflags=-s -w", f"{MODULE}/cmd/kueue@{VERSION}"],
            f"Kueue {VERSION}",
            env={"GOBIN": str(tmp)},
            cwd=tempfile.gettempdir(),
        )
        source = _module_dir() / "config" / "components"
        shutil.copytree(source / "crd" / "bases", tmp / "crds")
        shutil.copy(source / "webhook" / "manifests.yaml", tmp / "webhooks.yaml")

    stamp = f"{MODULE}@{VERSION} -trimpath -s -w"
    return realnode_build._cached(DIR, stamp, ["kueue", "crds", "webhooks.yaml"], install)


def _home(state: Path) -> Path:
    return state / "kueue"


def _kubectl(cluster: launcher.Cluster, *args: str, input_text: str | None = None) -> str:
    proc = subprocess.run(
        [launcher.kubectl_path(), f"--kubeconfig={cluster.kubeconfig}", *args],
        input=input_text,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise launcher.ClusterError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr[-2000:]}")
    return proc.stdout


def host_address() -> str:
    """This machine's address towards its default route (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("10.254.254.254", 9))
        address = sock.getsockname()[0]
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_link_local or ip.is_unspecified):
            return address
    raise launcher.ClusterError(
        "Kueue's webhooks need an address of this machine that is not loopback (an "
        "EndpointSlice may not hold one), and none was found: no IPv4 default route"
    )


def configuration(address: str, webhook_port: int, health_port: int, cert_dir: Path) -> dict:
    """Kueue's Configuration (JSON is YAML) for one manager on this machine."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": address, "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": True, "webhookServiceName": SERVICE},
        "manageJobsWithoutQueueName": False,
        "clientConnection": {"qps": 100, "burst": 200},
        "integrations": {"frameworks": ["batch/job"]},
    }


def webhooks(listed: dict) -> list[dict]:
    """Kueue's webhook configurations as its kustomization names them, with only the Job and
    Kueue-kind webhooks, and the Job ones only for Jobs with a queue label."""
    configs = []
    for config in listed.get("items", []):
        kept = []
        for hook in config.get("webhooks", []):
            path = hook["clientConfig"]["service"]["path"]
            if not any(part in path for part in _WEBHOOK_PATHS):
                continue
            hook["clientConfig"] = {
                "service": {"name": SERVICE, "namespace": NAMESPACE, "path": path}
            }
            hook["namespaceSelector"] = {
                "matchExpressions": [
                    {
                        "key": "kubernetes.io/metadata.name",
                        "operator": "NotIn",
                        "values": ["kube-system", NAMESPACE],
                    }
                ]
            }
            if "-batch-v1-job" in path:
                hook["objectSelector"] = {
                    "matchExpressions": [{"key": QUEUE_LABEL, "operator": "Exists"}]
                }
            kept.append(hook)
        metadata = {"name": f"kueue-{config['metadata']['name']}"}
        configs.append({**config, "metadata": metadata, "webhooks": kept})
    return configs


def service_objects(address: str, port: int) -> list[dict]:
    """Kueue's namespace and certificate Secret, its webhook Service without a selector, and
    the Service's EndpointSlice: this machine's address."""
    labels = {"kubernetes.io/service-name": SERVICE}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        # the empty Secret Kueue's certificate rotator fills (its internalcert component)
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET, "namespace": NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE},
            "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {"name": f"{SERVICE}-host", "namespace": NAMESPACE, "labels": labels},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        },
    ]


def _conversion_patch() -> str:
    service = {"name": SERVICE, "namespace": NAMESPACE, "path": "/convert"}
    webhook = {"clientConfig": {"service": service}, "conversionReviewVersions": ["v1"]}
    return json.dumps({"spec": {"conversion": {"strategy": "Webhook", "webhook": webhook}}})


def _documents(text: str) -> list[dict]:
    """The JSON objects kubectl prints one after another for a multi-document file."""
    decoder, found, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        obj, end = decoder.raw_decode(text, text.index("{", at))
        found.append(obj)
        at = end
    return found


def _ready(health_port: int) -> bool:
    return launcher._http_ok(f"http://127.0.0.1:{health_port}/readyz")


def start(cluster: launcher.Cluster) -> None:
    """Start the manager of ``cluster`` (configured by ``up``) and wait until it is ready."""
    home, state = _home(cluster.state), cluster.state
    ports = json.loads((home / "ports.json").read_text())
    pid = launcher._pids(state, (NAME,)).get(NAME)
    if pid is not None and launcher._alive(pid) and _ready(ports["health"]):
        return
    launcher._spawn(
        state,
        NAME,
        [
            str(build() / "kueue"),
            f"--config={home / 'config.yaml'}",
            f"--kubeconfig={cluster.kubeconfig}",
            "--feature-gates=VisibilityOnDemand=false",
        ],
    )
    certs = home / "certs"

    def ready() -> bool:
        # as a kubelet syncs a Secret volume: the rotator writes the Secret, then waits to see
        # its certificate in certDir before it injects the CA and serves
        if not (certs / "tls.crt").exists():
            _mount_secret(cluster, certs)
        return _ready(ports["health"])

    launcher._wait("Kueue's /readyz", ready, 120, state, NAME)


def _mount_secret(cluster: launcher.Cluster, certs: Path) -> None:
    """Write the certificate Secret's keys into ``certs`` once Kueue has filled it."""
    out = subprocess.run(
        [launcher.kubectl_path(), f"--kubeconfig={cluster.kubeconfig}", "get", "secret"]
        + [SECRET, "-n", NAMESPACE, "-o", "json"],
        capture_output=True,
        text=True,
    )
    data = (json.loads(out.stdout).get("data") or {}) if out.returncode == 0 else {}
    if not data.get("tls.crt") or not data.get("tls.key"):
        return
    certs.mkdir(parents=True, exist_ok=True)
    for key in ("ca.crt", "tls.key", "tls.crt"):  # tls.crt last: its presence means all
        if data.get(key):
            temporary = certs / f".{key}"
            temporary.write_bytes(base64.b64decode(data[key]))
            temporary.chmod(0o600)
            os.replace(temporary, certs / key)


def stop(state: Path) -> None:
    """SIGKILL the manager (as a crash would); its objects and webhooks stay."""
    pid = launcher._pids(state, (NAME,)).get(NAME)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.time() + 10
    while launcher._alive(pid) and time.time() < deadline:
        time.sleep(0.05)


def _check_api_server(cluster: launcher.Cluster) -> None:
    pid = launcher._pids(cluster.state).get("kube-apiserver")
    with contextlib.suppress(OSError, TypeError):
        if b"--enable-aggregator-routing=true" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            raise launcher.ClusterError(
                f"the cluster in {cluster.state} was started by an older launcher (its API "
                "server cannot call a webhook behind a Service): scripts/cluster down, then "
                "up --kueue"
            )


def up(cluster: launcher.Cluster) -> None:
    """Kueue's CRDs, Service, webhooks, then the manager (a no-op when it runs)."""
    _check_api_server(cluster)
    started = time.time()
    folder, home = build(), _home(cluster.state)
    address = host_address()
    if not (home / "ports.json").exists():
        home.mkdir(parents=True, exist_ok=True)
        ports = {"webhook": launcher._free_port(), "health": launcher._free_port()}
        config = configuration(address, ports["webhook"], ports["health"], home / "certs")
        (home / "config.yaml").write_text(json.dumps(config, indent=1))
        (home / "ports.json").write_text(json.dumps(ports))
    ports = json.loads((home / "ports.json").read_text())
    _kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(folder / "crds"))
    for plural in _CONVERTED:
        crd = f"{plural}.kueue.x-k8s.io"
        _kubectl(cluster, "patch", "crd", crd, "--type=merge", "-p", _conversion_patch())
    _kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    as_json = _kubectl(
        cluster, "create", "--dry-run=client", "-o", "json", "-f", str(folder / "webhooks.yaml")
    )
    listed = {"items": _documents(as_json)}
    items = [*service_objects(address, ports["webhook"]), *webhooks(listed)]
    objects = {"apiVersion": "v1", "kind": "List", "items": items}
    _kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(objects))
    start(cluster)
    _log(f"Kueue {VERSION} ready in {time.time() - started:.1f} s (webhooks at {address})")


def running(state: Path) -> bool:
    pid = launcher._pids(state, (NAME,)).get(NAME)
    return pid is not None and launcher._alive(pid)


GROUP = "kueue.x-k8s.io/v1beta2"


def queue_objects(namespace: str, local_queue: str, cpu: str, memory: str) -> list[dict]:
    """A LocalQueue ``local_queue`` in ``namespace`` on a ClusterQueue of its own
    (``cq-<namespace>``) with a nominal quota of ``cpu`` and ``memory``, which preempts
    lower-priority work for higher; with the ResourceFlavor and two WorkloadPriorityClasses
    (``low`` 10, ``high`` 1000) it needs. The tests and ``benchmarks/k8s_kueue.py`` apply it."""
    quota = [{"name": "cpu", "nominalQuota": cpu}, {"name": "memory", "nominalQuota": memory}]
    return [
        {"apiVersion": GROUP, "kind": "ResourceFlavor", "metadata": {"name": "default"}},
        *(
            {"apiVersion": GROUP, "kind": "WorkloadPriorityClass", "metadata": {"name": name}}
            | {"value": value}
            for name, value in (("low", 10), ("high", 1000))
        ),
        {
            "apiVersion": GROUP,
            "kind": "ClusterQueue",
            "metadata": {"name": f"cq-{namespace}"},
            "spec": {
                "preemption": {"withinClusterQueue": "LowerPriority"},
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                "resourceGroups": [
                    {
                        "coveredResources": ["cpu", "memory"],
                        "flavors": [{"name": "default", "resources": quota}],
                    }
                ],
            },
        },
        {
            "apiVersion": GROUP,
            "kind": "LocalQueue",
            "metadata": {"name": local_queue, "namespace": namespace},
            "spec": {"clusterQueue": f"cq-{namespace}"},
        },
    ]


def apply(cluster: launcher.Cluster, objects: list[dict]) -> None:
    """``kubectl apply`` of ``objects`` (Kueue's kinds included) as one List."""
    items = {"apiVersion": "v1", "kind": "List", "items": objects}
    _kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(items))


def delete_cluster_queue(cluster: launcher.Cluster, namespace: str) -> None:
    """Remove the ClusterQueue :func:`queue_objects` made for ``namespace`` (best effort)."""
    with contextlib.suppress(launcher.ClusterError):
        _kubectl(cluster, "delete", "clusterqueue", f"cq-{namespace}", "--wait=false")
