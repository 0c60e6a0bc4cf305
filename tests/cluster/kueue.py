"""``scripts/cluster up --kueue``: a real Kueue manager beside the test control plane.

Kueue is built from its Go module (``go install sigs.k8s.io/kueue/cmd/kueue@VERSION``, its own
GOBIN: its Kubernetes libraries are not the tools module's) into ``kueue-<version>/bin`` of the
cache, with the module's CRDs and webhook configurations copied beside it. It runs as a process
of the cluster's state dir, like the other components, with the admin kubeconfig:

* its configuration integrates ``batch/job`` only, with leader election off (one manager);
* its webhooks are served on 127.0.0.1 with a certificate of the cluster's CA (Kueue's own
  certificate rotation is off: there is no Service in front of a host process), and registered
  with ``url`` client configs pointing there. They keep Kueue's ``failurePolicy: Fail``; their
  Job webhooks select only Jobs that carry the queue label, so that the other tests sharing the
  cluster create Jobs while Kueue is stopped, and a queued Job is refused as on any cluster;
* the visibility API server is off (it needs API aggregation, which nothing here uses).

``stop`` and ``start`` let a test take Kueue away mid-campaign; ``down`` stops it with the rest.
Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
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
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
#: The webhooks trainbed needs: batch/v1 Jobs and Kueue's own kinds (the others would call
#: paths that this configuration does not serve).
_WEBHOOK_PATHS = ("-batch-v1-job", "-kueue-x-k8s-io-")


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


def _serving_certificate(pki: Path, home: Path) -> Path:
    """``certs/tls.crt`` and ``tls.key`` for 127.0.0.1, signed by the cluster's CA."""
    certs = home / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    (certs / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    request = ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tls.key", "-out", "tls.csr"]
    launcher._openssl(*request, "-subj", "/CN=kueue-webhook", cwd=certs)
    ca = ["-CA", str(pki / "ca.crt"), "-CAkey", str(pki / "ca.key"), "-CAcreateserial"]
    sign = ["x509", "-req", "-in", "tls.csr", *ca, "-out", "tls.crt", "-days", "3650"]
    launcher._openssl(*sign, "-extfile", "ext", cwd=certs)
    return certs


def configuration(webhook_port: int, health_port: int, cert_dir: Path) -> dict:
    """Kueue's Configuration (JSON is YAML) for one manager on this machine."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "clientConnection": {"qps": 100, "burst": 200},
        "integrations": {"frameworks": ["batch/job"]},
    }


def webhooks(listed: dict, port: int, ca_bundle: bytes) -> list[dict]:
    """Kueue's webhook configurations, pointed at 127.0.0.1:``port``, with only the Job and
    Kueue-kind webhooks, and the Job ones only for Jobs with a queue label."""
    configs = []
    for config in listed.get("items", []):
        kept = []
        for hook in config.get("webhooks", []):
            path = hook["clientConfig"]["service"]["path"]
            if not any(part in path for part in _WEBHOOK_PATHS):
                continue
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}{path}",
                "caBundle": base64.b64encode(ca_bundle).decode(),
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
        config["metadata"] = {"name": f"kueue-{config['metadata']['name']}"}
        configs.append({**config, "webhooks": kept})
    return configs


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
    launcher._wait("Kueue's /readyz", lambda: _ready(ports["health"]), 120, state, NAME)


def stop(state: Path) -> None:
    """SIGKILL the manager (as a crash would); its objects and webhooks stay."""
    pid = launcher._pids(state, (NAME,)).get(NAME)
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.time() + 10
    while launcher._alive(pid) and time.time() < deadline:
        time.sleep(0.05)


def up(cluster: launcher.Cluster) -> None:
    """Kueue's CRDs, its namespace, the manager, then its webhooks (a no-op when running)."""
    started = time.time()
    folder, home = build(), _home(cluster.state)
    if not (home / "ports.json").exists():
        home.mkdir(parents=True, exist_ok=True)
        certs = _serving_certificate(cluster.state / "pki", home)
        ports = {"webhook": launcher._free_port(), "health": launcher._free_port()}
        config = configuration(ports["webhook"], ports["health"], certs)
        (home / "config.yaml").write_text(json.dumps(config, indent=1))
        (home / "ports.json").write_text(json.dumps(ports))
    ports = json.loads((home / "ports.json").read_text())
    _kubectl(cluster, "apply", "--server-side", "--force-conflicts", "-f", str(folder / "crds"))
    _kubectl(cluster, "wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    _kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(namespace))
    start(cluster)
    listed = json.loads(
        _kubectl(
            cluster, "create", "--dry-run=client", "-o", "json", "-f", str(folder / "webhooks.yaml")
        )
    )
    ca_bundle = (cluster.state / "pki" / "ca.crt").read_bytes()
    items = webhooks(listed, ports["webhook"], ca_bundle)
    configs = {"apiVersion": "v1", "kind": "List", "items": items}
    _kubectl(cluster, "apply", "-f", "-", input_text=json.dumps(configs))
    _log(f"Kueue {VERSION} ready in {time.time() - started:.1f} s")


def running(state: Path) -> bool:
    pid = launcher._pids(state, (NAME,)).get(NAME)
    return pid is not None and launcher._alive(pid)
