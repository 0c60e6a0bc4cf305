"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, built from Go modules and started on 127.0.0.1.

No Docker and no release downloads: every component is a Go module, built once from the pinned
tools modules beside this file (``tools/k8s``, ``tools/etcd``) or ``go install``ed at a pinned
version (kwok, helm) into ``~/.cache/trainbed/k8s-<version>/bin``, and reused. kwok simulates the
nodes and the pod lifecycle with the Stages in ``kwok-stages.yaml``. ``scripts/cluster`` and the
pytest fixture in ``tests/integration/conftest.py`` both drive this module. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
K8S_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.8"
KWOK_VERSION = "v0.7.0"
HELM_VERSION = "v3.19.0"
CACHE = Path(os.environ.get("TRAINBED_CACHE", Path.home() / ".cache" / "trainbed"))
BIN = CACHE / f"k8s-{K8S_VERSION}" / "bin"
STATE = Path(os.environ.get("TRAINBED_CLUSTER_DIR", CACHE / "cluster"))
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ClusterError(RuntimeError):
    """The control plane could not be built or started; the message says which part and why."""


@dataclass
class Cluster:
    state: Path
    kubeconfig: Path
    server: str


def _log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


# --- build ---------------------------------------------------------------------------------


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOFLAGS", "-mod=mod")
    return env


def _go(args: list[str], cwd: Path, what: str) -> None:
    go = shutil.which("go") or "/usr/local/go/bin/go"
    _log(f"building {what} (go {' '.join(args[:2])} ...)")
    started = time.time()
    proc = subprocess.run([go, *args], cwd=cwd, env=_go_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"building {what} failed:\n{proc.stderr[-4000:]}")
    _log(f"built {what} in {time.time() - started:.0f} s")


def kubectl_path() -> str:
    found = shutil.which("kubectl")
    return found or str(BIN / "kubectl")


def build(bin_dir: Path = BIN) -> Path:
    """Build whatever is missing into ``bin_dir``; a no-op when all binaries are there."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    flags = ["-trimpath", "-ldflags", "-s -w"]
    k8s = [
        c
        for c in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
        if not (bin_dir / c).exists()
    ]
    if not shutil.which("kubectl") and not (bin_dir / "kubectl").exists():
        k8s.append("kubectl")
    if k8s:
        _go(
            [
                "build",
                "-p",
                "2",
                *flags,
                "-o",
                f"{bin_dir}/",
                *[f"k8s.io/kubernetes/cmd/{c}" for c in k8s],
            ],
            HERE / "tools" / "k8s",
            " ".join(k8s),
        )
    if not (bin_dir / "etcd").exists():
        _go(
            ["build", "-p", "2", *flags, "-o", str(bin_dir / "etcd"), "go.etcd.io/etcd/server/v3"],
            HERE / "tools" / "etcd",
            "etcd",
        )
    for name, package in (
        ("kwok", f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}"),
        ("helm", f"helm.sh/helm/v3/cmd/helm@{HELM_VERSION}"),
    ):
        if not (bin_dir / name).exists():
            env_dir = bin_dir
            os.environ["GOBIN"] = str(env_dir)
            try:
                _go(["install", *flags, package], HERE, name)
            finally:
                os.environ.pop("GOBIN", None)
    return bin_dir


# --- certificates ----------------------------------------------------------------------------


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ClusterError(f"openssl {args[0]} failed: {proc.stderr[-2000:]}")


def _certificates(pki: Path) -> None:
    """A CA, the API server's serving cert, an admin client cert and the service-account keys."""
    if (pki / "admin.crt").exists():
        return
    pki.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "3650",
        "-subj",
        "/CN=trainbed-test-ca",
        cwd=pki,
    )
    (pki / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n"
    )
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject, ext in (
        ("server", "/CN=kube-apiserver", "server.ext"),
        ("admin", "/O=system:masters/CN=trainbed-admin", "client.ext"),
    ):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=pki,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "3650",
            "-extfile",
            ext,
            cwd=pki,
        )
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _kubeconfig(path: Path, server: str, pki: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "trainbed",
                        "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
                    }
                ],
                "users": [
                    {
                        "name": "admin",
                        "user": {
                            "client-certificate": str(pki / "admin.crt"),
                            "client-key": str(pki / "admin.key"),
                        },
                    }
                ],
                "contexts": [
                    {"name": "trainbed", "context": {"cluster": "trainbed", "user": "admin"}}
                ],
                "current-context": "trainbed",
            },
            indent=2,
        )
    )


# --- processes -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


#: The components outlive this process (``scripts/cluster up`` returns); keeping their Popen
#: objects referenced stops Python from warning that they are still running when collected.
_CHILDREN: list[subprocess.Popen[bytes]] = []


def _spawn(state: Path, name: str, args: list[str]) -> int:
    with open(state / "logs" / f"{name}.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=state,
        )
    _CHILDREN.append(proc)
    (state / "pids" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _pids(state: Path) -> dict[str, int]:
    found = {}
    for name in COMPONENTS:
        path = state / "pids" / f"{name}.pid"
        if path.exists():
            found[name] = int(path.read_text())
    return found


def _ssl_context(pki: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return context


def _get(url: str, pki: Path, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, context=_ssl_context(pki), timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (OSError, ssl.SSLError):
        return 0, b""


def _request(method: str, url: str, pki: Path, body: dict) -> int:
    data = json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, context=_ssl_context(pki), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _wait(what: str, check, timeout: float, state: Path, component: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        pid = _pids(state).get(component)
        if pid is not None and not _alive(pid):
            tail = (state / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{component} exited while waiting for {what}:\n{tail}")
        time.sleep(0.1)
    tail = (state / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
    raise ClusterError(f"timed out after {timeout:g} s waiting for {what}:\n{tail}")


def _read_cluster(state: Path) -> Cluster | None:
    info = state / "cluster.json"
    if not info.exists():
        return None
    data = json.loads(info.read_text())
    pids = _pids(state)
    if set(pids) != set(COMPONENTS) or not all(_alive(p) for p in pids.values()):
        return None
    status, _ = _get(data["server"] + "/readyz", state / "pki")
    if status != 200:
        return None
    return Cluster(state=state, kubeconfig=state / "kubeconfig", server=data["server"])


def node_manifest(name: str, cpu: str, memory: str, pods: int = 110) -> dict:
    """A Node that kwok manages (its annotation), with the given capacity."""
    capacity = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node-role.kubernetes.io/agent": "",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def ensure_nodes(cluster: Cluster, count: int, cpu: str = "16", memory: str = "64Gi") -> None:
    """Create (idempotently) ``count`` kwok nodes and wait until kwok marks them Ready."""
    pki = cluster.state / "pki"
    for i in range(count):
        status = _request(
            "POST",
            cluster.server + "/api/v1/nodes",
            pki,
            node_manifest(f"kwok-node-{i}", cpu, memory),
        )
        if status not in (201, 409):
            raise ClusterError(f"creating node kwok-node-{i} failed with HTTP {status}")

    def ready() -> bool:
        status, body = _get(cluster.server + "/api/v1/nodes?labelSelector=type%3Dkwok", pki)
        if status != 200:
            return False
        nodes = json.loads(body)["items"]
        ready_nodes = [
            n
            for n in nodes
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (n.get("status") or {}).get("conditions") or []
            )
        ]
        return len(ready_nodes) >= count

    _wait(f"{count} Ready kwok nodes", ready, 60, cluster.state, "kwok")


def up(
    nodes: int = 4, node_cpu: str = "16", node_memory: str = "64Gi", state: Path = STATE
) -> Cluster:
    """Build what is missing, start everything on 127.0.0.1, and return when it is ready."""
    existing = _read_cluster(state)
    if existing is not None:
        ensure_nodes(existing, nodes, node_cpu, node_memory)
        return existing
    down(state)
    bin_dir = build()
    for sub in ("pki", "logs", "pids", "etcd"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    pki = state / "pki"
    _certificates(pki)
    etcd_port, etcd_peer, api_port = _free_port(), _free_port(), _free_port()
    server = f"https://127.0.0.1:{api_port}"
    kubeconfig = state / "kubeconfig"
    _kubeconfig(kubeconfig, server, pki)
    (state / "cluster.json").write_text(json.dumps({"server": server, "etcd": etcd_port}))
    etcd_url = f"http://127.0.0.1:{etcd_port}"
    _spawn(
        state,
        "etcd",
        [
            str(bin_dir / "etcd"),
            "--data-dir",
            str(state / "etcd"),
            "--name",
            "trainbed",
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster",
            f"trainbed=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
            "--listen-metrics-urls",
            "",
        ],
    )
    _wait("etcd", lambda: _http_ok(f"{etcd_url}/health"), 30, state, "etcd")
    _spawn(
        state,
        "kube-apiserver",
        [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--advertise-address=127.0.0.1",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,"
            "DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            "--allow-privileged=true",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--cert-dir={pki / 'apiserver'}",
            "--profiling=false",
            "--v=1",
        ],
    )
    _wait(
        "kube-apiserver /readyz",
        lambda: _get(server + "/readyz", pki)[0] == 200,
        90,
        state,
        "kube-apiserver",
    )
    common = [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--profiling=false"]
    _spawn(
        state,
        "kube-controller-manager",
        [
            str(bin_dir / "kube-controller-manager"),
            *common,
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={_free_port()}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={pki / 'ca.crt'}",
            f"--cluster-signing-key-file={pki / 'ca.key'}",
            "--controllers=*",
            "--concurrent-job-syncs=20",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ],
    )
    _spawn(
        state,
        "kube-scheduler",
        [
            str(bin_dir / "kube-scheduler"),
            *common,
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={_free_port()}",
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--v=1",
        ],
    )
    _spawn(
        state,
        "kwok",
        [
            str(bin_dir / "kwok"),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.0.0.1/16",
            "--node-ip=10.0.0.1",
            f"--config={HERE / 'kwok-stages.yaml'}",
            "--server-address=127.0.0.1:0",
            "--node-lease-duration-seconds=40",
        ],
    )
    cluster = Cluster(state=state, kubeconfig=kubeconfig, server=server)

    def default_sa() -> bool:
        return _get(server + "/api/v1/namespaces/default/serviceaccounts/default", pki)[0] == 200

    _wait(
        "the default ServiceAccount (controller-manager up)",
        default_sa,
        60,
        state,
        "kube-controller-manager",
    )
    ensure_nodes(cluster, nodes, node_cpu, node_memory)
    return cluster


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


def down(state: Path = STATE) -> None:
    """Stop every component (process groups, SIGTERM then SIGKILL) and remove the state."""
    pids = _pids(state) if (state / "pids").exists() else {}
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.time() + 10
    while time.time() < deadline and any(_alive(p) for p in pids.values()):
        time.sleep(0.1)
    for pid in pids.values():
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in pids.values():
        deadline = time.time() + 5
        while _alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            raise ClusterError(f"process {pid} survived SIGKILL")
    for proc in list(_CHILDREN):
        if proc.poll() is not None:  # reaps the ones this process started
            _CHILDREN.remove(proc)
    if state.exists():
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="build what is missing, start, print the kubeconfig path")
    start.add_argument("--nodes", type=int, default=4)
    start.add_argument("--node-cpu", default="16")
    start.add_argument("--node-memory", default="64Gi")
    sub.add_parser("down", help="stop everything; leaves no process behind")
    sub.add_parser("kubeconfig", help="print the kubeconfig path of the running cluster")
    sub.add_parser("build", help="only build the binaries into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            started = time.time()
            cluster = up(args.nodes, args.node_cpu, args.node_memory)
            _log(f"ready in {time.time() - started:.1f} s")
            print(cluster.kubeconfig)
        elif args.command == "down":
            down()
        elif args.command == "kubeconfig":
            cluster = _read_cluster(STATE)
            if cluster is None:
                print("no cluster is running; start one with scripts/cluster up", file=sys.stderr)
                return 1
            print(cluster.kubeconfig)
        elif args.command == "build":
            print(build())
    except ClusterError as err:
        print(f"scripts/cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
