"""A real Kubernetes control plane for tests: etcd, kube-apiserver, kube-controller-manager,
kube-scheduler and kwok, built from Go modules and started on 127.0.0.1.

No Docker and no release downloads: every component is a Go module. The Go module ``tools/``
beside this file pins them all (``k8s.io/kubernetes`` with its staging ``replace`` block, etcd,
kwok, helm; ``tool`` directives name the commands). They are built once into
``~/.cache/trainbed/k8s-<version>/bin`` and reused; a stamp of ``go.mod``/``go.sum`` in that folder
makes any pin change rebuild. kwok simulates the nodes and the pod lifecycle with the Stages in
``kwok-stages.yaml``. ``scripts/cluster`` and the pytest fixture in
``tests/integration/conftest.py`` both drive this module. Standard library only.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools"


def pinned(module: str) -> str:
    """The version of ``module`` that ``tools/go.mod`` requires."""
    pattern = rf"^[ \t]*(?:require[ \t]+)?{re.escape(module)}[ \t]+(v\S+)"
    match = re.search(pattern, (TOOLS / "go.mod").read_text(), re.M)
    if match is None:
        raise RuntimeError(f"{TOOLS / 'go.mod'} does not require {module}")
    return match.group(1)


K8S_VERSION = pinned("k8s.io/kubernetes")
ETCD_VERSION = pinned("go.etcd.io/etcd/server/v3")
KWOK_VERSION = pinned("sigs.k8s.io/kwok")
HELM_VERSION = pinned("helm.sh/helm/v3")
CACHE = Path(os.environ.get("TRAINBED_CACHE", Path.home() / ".cache" / "trainbed"))
BIN = CACHE / f"k8s-{K8S_VERSION}" / "bin"
STATE = Path(os.environ.get("TRAINBED_CLUSTER_DIR", CACHE / "cluster"))
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
#: The API server's identity towards kubelets (logs, exec); a real node's RBAC binds it.
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
#: binary name -> Go package, all pinned by tools/go.mod
PACKAGES = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "kwok": "sigs.k8s.io/kwok/cmd/kwok",
    "helm": "helm.sh/helm/v3/cmd/helm",
    "etcd": "go.etcd.io/etcd/server/v3",
}


class ClusterError(RuntimeError):
    """The control plane could not be built or started; the message says which part and why."""


@dataclass
class Cluster:
    state: Path
    kubeconfig: Path
    server: str


def _log(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so two pytest sessions or scripts never build or start at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --- build ---------------------------------------------------------------------------------


def _go_binary() -> str:
    go = shutil.which("go")
    if go is None and Path("/usr/local/go/bin/go").exists():  # the official tarball's place
        go = "/usr/local/go/bin/go"
    if go is None:
        raise ClusterError(
            "Go is not installed: the control plane is built from Go modules. Install Go >= 1.26 "
            "(https://go.dev/dl/) and put it on PATH, or set TRAINBED_SKIP_CLUSTER=1 to skip."
        )
    return go


#: Seconds between progress lines of a long Go build.
PROGRESS_EVERY_S = 30.0


def _go(args: list[str], what: str) -> None:
    """Run ``go`` in the tools module, with a progress line every PROGRESS_EVERY_S (packages
    compiled so far, elapsed time). A failure names the Go package that broke and its error."""
    go = _go_binary()
    verbose = [args[0], "-v", *args[1:]] if args and args[0] in ("build", "install") else args
    _log(f"building {what} (go {' '.join(args)})")
    started = last = time.time()
    compiled = 0
    errors: list[str] = []
    proc = subprocess.Popen(
        [go, *verbose],
        cwd=TOOLS,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    for line in proc.stderr:  # -v names each package as it is compiled
        text = line.rstrip("\n")
        if text and " " not in text and not text.startswith("#"):
            compiled += 1
        else:
            errors.append(text)
        if time.time() - last >= PROGRESS_EVERY_S:
            last = time.time()
            _log(f"  ... {what}: {compiled} packages compiled, {last - started:.0f} s")
    if proc.wait() != 0:
        # a compile error is headed "# <package>"; a missing one says "... package <path>"
        named = [e[2:] for e in errors if e.startswith("# ")]
        named += re.findall(r"package (\S+?)[:;]?(?:\s|$)", "\n".join(errors))
        failed = named[0] if named else "(see below)"
        detail = "\n".join(errors)[-4000:]
        raise ClusterError(
            f"building {what} failed in Go package {failed} "
            f"(in {TOOLS}: {go} {' '.join(args)}):\n{detail}"
        )
    _log(f"built {what} in {time.time() - started:.0f} s ({compiled} packages compiled)")


def _ldflags() -> str:
    """Strip symbols, and stamp the release version, as Kubernetes' own build does
    (hack/lib/version.sh): without it the binaries report v0.0.0-master, which helm's
    kubeVersion checks and kubectl's version-skew warning would see."""
    major, minor = K8S_VERSION.lstrip("v").split(".")[:2]
    stamp = []
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        stamp += [
            f"-X {package}.gitVersion={K8S_VERSION}",
            f"-X {package}.gitMajor={major}",
            f"-X {package}.gitMinor={minor}",
            f"-X {package}.gitTreeState=clean",
        ]
    return " ".join(["-s", "-w", *stamp])


def _stamp() -> str:
    """Changes whenever a pin or the build recipe changes."""
    digest = hashlib.sha256(_ldflags().encode())
    for name in ("go.mod", "go.sum"):
        digest.update((TOOLS / name).read_bytes())
    return digest.hexdigest()


def kubectl_path() -> str:
    """The kubectl of the pinned release (within the version skew); the machine's as a fallback."""
    if (BIN / "kubectl").exists():
        return str(BIN / "kubectl")
    return shutil.which("kubectl") or str(BIN / "kubectl")


def helm_path() -> str:
    return str(BIN / "helm")


def build(bin_dir: Path = BIN) -> Path:
    """Build whatever is missing into ``bin_dir``; a no-op when all binaries are there."""
    with _locked(bin_dir.parent / "build.lock"):
        stamp_file = bin_dir / ".stamp"
        stamp = _stamp()
        if bin_dir.exists() and (not stamp_file.exists() or stamp_file.read_text() != stamp):
            _log(f"{TOOLS / 'go.mod'} changed since the last build: rebuilding {bin_dir}")
            shutil.rmtree(bin_dir)
        bin_dir.mkdir(parents=True, exist_ok=True)
        missing = [name for name in PACKAGES if not (bin_dir / name).exists()]
        if not missing:
            return bin_dir
        jobs = os.environ.get("TRAINBED_BUILD_JOBS", str(os.cpu_count() or 2))
        flags = ["build", "-p", jobs, "-mod=readonly", "-trimpath", f"-ldflags={_ldflags()}"]
        started = time.time()
        with tempfile.TemporaryDirectory(dir=bin_dir.parent, prefix=".build-") as tmp:
            commands = [name for name in missing if name != "etcd"]
            if commands:  # one go build: the shared packages compile once
                _go(
                    [*flags, "-o", f"{tmp}/", *(PACKAGES[name] for name in commands)],
                    " ".join(commands),
                )
            if "etcd" in missing:  # its main package is the module root, named "v3" by default
                _go([*flags, "-o", f"{tmp}/etcd", PACKAGES["etcd"]], "etcd")
            for name in missing:  # complete binaries only: a killed build leaves none behind
                os.replace(Path(tmp) / name, bin_dir / name)
        stamp_file.write_text(stamp)
        _log(f"built {', '.join(missing)} into {bin_dir} in {time.time() - started:.0f} s")
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
    _client_certificate(pki, pki / "kubelet-client", f"/CN={KUBELET_CLIENT_USER}")


def _client_certificate(pki: Path, prefix: Path, subject: str) -> None:
    """``prefix``.key/.crt: a client certificate for ``subject``, signed by the cluster's CA."""
    key, csr, crt = (f"{prefix}.{ext}" for ext in ("key", "csr", "crt"))
    request = ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr]
    _openssl(*request, "-subj", subject, cwd=pki)
    sign = ["x509", "-req", "-in", csr, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial"]
    _openssl(*sign, "-out", crt, "-days", "3650", "-extfile", "client.ext", cwd=pki)


def _kubeconfig(path: Path, server: str, pki: Path, user: Path | None = None) -> None:
    user = user or pki / "admin"  # the prefix of the user's .crt and .key
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
                            "client-certificate": f"{user}.crt",
                            "client-key": f"{user}.key",
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


def _spawn(state: Path, name: str, args: list[str], env: dict[str, str] | None = None) -> int:
    with open(state / "logs" / f"{name}.log", "ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            args,
            env={**os.environ, **env} if env else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=state,
        )
    _CHILDREN.append(proc)
    (state / "pids" / f"{name}.pid").write_text(str(proc.pid))
    return proc.pid


def _pids(state: Path, names: tuple[str, ...] = COMPONENTS) -> dict[str, int]:
    found = {}
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            found[name] = int((state / "pids" / f"{name}.pid").read_text())
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
        pid = _pids(state, (component,)).get(component)
        if pid is not None and not _alive(pid):
            tail = (state / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
            raise ClusterError(f"{component} exited while waiting for {what}:\n{tail}")
        time.sleep(0.1)
    tail = (state / "logs" / f"{component}.log").read_text(errors="replace")[-3000:]
    raise ClusterError(f"timed out after {timeout:g} s waiting for {what}:\n{tail}")


def _read_cluster(state: Path, patience: float = 0.0) -> Cluster | None:
    """The running cluster, or None. With all its processes alive, it waits up to ``patience``
    seconds for /readyz, so that a busy machine does not get a live cluster restarted."""
    info = state / "cluster.json"
    try:
        data = json.loads(info.read_text())
    except (OSError, ValueError):
        return None
    deadline = time.time() + patience
    while True:
        pids = _pids(state)
        if set(pids) != set(COMPONENTS) or not all(_alive(p) for p in pids.values()):
            return None
        if _get(data["server"] + "/readyz", state / "pki")[0] == 200:
            return Cluster(state=state, kubeconfig=state / "kubeconfig", server=data["server"])
        if time.time() >= deadline:
            return None
        time.sleep(0.5)


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


def _lock_path(state: Path) -> Path:
    return state.parent / f".{state.name}.lock"  # outside the state folder, which down() removes


def running(state: Path = STATE) -> Cluster | None:
    """The cluster whose state is in ``state`` when all its processes are alive and it is ready."""
    return _read_cluster(state)


def up(
    nodes: int = 4,
    node_cpu: str = "16",
    node_memory: str = "64Gi",
    state: Path = STATE,
    real_node: bool = False,
    kueue: bool = False,
) -> Cluster:
    """Build what is missing, start everything on 127.0.0.1, and return when it is ready.

    A no-op (apart from adding missing nodes) when the cluster in ``state`` is already up.
    ``real_node`` adds a real kubelet node beside the kwok nodes (``realnode.py``, root only);
    ``kueue`` a Kueue manager with its CRDs and webhooks (``kueue.py``).
    """
    if real_node:
        from tests.cluster import host, realnode

        try:
            realnode.preflight()  # one clear line, before anything starts, when it cannot work
        except host.HostError as err:
            raise ClusterError(str(err)) from None
    with _locked(_lock_path(state)):
        existing = _read_cluster(state, patience=30)
        if existing is not None:
            ensure_nodes(existing, nodes, node_cpu, node_memory)
            if real_node:
                _add_real_node(existing)
            if kueue:
                _add_kueue(existing)
            return existing
        _down(state)
        try:
            cluster = _up(nodes, node_cpu, node_memory, state)
            if real_node:
                _add_real_node(cluster)
            if kueue:
                _add_kueue(cluster)
            return cluster
        except BaseException:
            _down(state, keep_logs=True)  # nothing left running after a failed start
            raise


#: Further kwok configuration files (os.pathsep-separated), passed after kwok-stages.yaml: e.g.
#: benchmarks/kwok-scale.yaml, the pod-stage parallelism a 10,000-trial run needs.
KWOK_CONFIG_ENV = "TRAINBED_KWOK_CONFIG"


def _extra_kwok_configs() -> list[str]:
    given = os.environ.get(KWOK_CONFIG_ENV, "")
    paths = [str(Path(p).resolve()) for p in given.split(os.pathsep) if p]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise ClusterError(f"{KWOK_CONFIG_ENV} names no file: {', '.join(missing)}")
    return paths


def _add_real_node(cluster: Cluster) -> None:
    from tests.cluster import host, realnode

    pid = _pids(cluster.state).get("kube-apiserver")
    with contextlib.suppress(OSError, TypeError):
        if b"--kubelet-client-certificate" not in Path(f"/proc/{pid}/cmdline").read_bytes():
            raise ClusterError(
                f"the cluster in {cluster.state} was started by an older launcher (its API server "
                "has no kubelet client certificate): scripts/cluster down, then up --real-node"
            )
    try:
        realnode.up(cluster)
    except host.HostError as err:
        raise ClusterError(str(err)) from None


def _add_kueue(cluster: Cluster) -> None:
    from tests.cluster import kueue

    kueue.up(cluster)


def _up(nodes: int, node_cpu: str, node_memory: str, state: Path) -> Cluster:
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
            # 1.37 refuses a loopback address in the kubernetes Service's endpoints; nothing
            # in the cluster dials it (kwok pods run nothing), so reconcile no endpoints.
            "--endpoint-reconciler-type=none",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            # towards kubelets (a real node's logs and exec): a client certificate, and the
            # node's InternalIP first, so the node's name need not resolve
            f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname,InternalDNS,ExternalDNS,ExternalIP",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,LimitRanger,ServiceAccount,PodSecurity,"
            "DefaultStorageClass,ResourceQuota,MutatingAdmissionWebhook,ValidatingAdmissionWebhook",
            "--allow-privileged=true",
            "--service-cluster-ip-range=10.96.0.0/16",
            # a webhook behind a Service (Kueue's) is called at its EndpointSlice's address:
            # nothing here routes ClusterIPs
            "--enable-aggregator-routing=true",
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
            *(f"--config={extra}" for extra in _extra_kwok_configs()),
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
    with _locked(_lock_path(state)):
        _down(state)


def _in_state(pid: int, state: Path) -> bool:
    """Whether ``pid`` runs in ``state`` (every component's working directory)."""
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return False
    return cwd == state or state in cwd.parents


def _stop(pids: dict[str, int], state: Path, names: tuple[str, ...] | None = None) -> None:
    """SIGTERM the process groups of ``pids`` (those of ``names`` only, if given), then SIGKILL."""
    pids = {n: p for n, p in pids.items() if names is None or n in names}
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
    for proc in [c for c in _CHILDREN if c.pid in pids.values()]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # reap: its threads may still be exiting after the SIGKILL
        if proc.returncode is not None:
            _CHILDREN.remove(proc)


def _down(state: Path, keep_logs: bool = False) -> None:
    if (state / "realnode").exists():  # first: its pods, containerd, and what it changed
        from tests.cluster import host, realnode

        try:
            realnode.teardown(state)
        except host.HostError as err:
            raise ClusterError(f"the real node could not be torn down: {err}") from None
    pids = _pids(state, (*COMPONENTS, "kueue")) if (state / "pids").exists() else {}
    _stop(pids, state)
    for proc in list(_CHILDREN):
        if proc.poll() is not None:  # reaps the ones this process started
            _CHILDREN.remove(proc)
    # Verify: no process of ours is left, neither a component nor anything that ran in the state.
    deadline = time.time() + 5
    while True:
        left = [p for p in pids.values() if _alive(p)]
        if state.exists():
            left += [
                int(d.name)
                for d in Path("/proc").iterdir()
                if d.name.isdigit()
                and int(d.name) not in left
                and _in_state(int(d.name), state)
                and _alive(int(d.name))
            ]
        if not left:
            break
        if time.time() > deadline:
            raise ClusterError(f"processes {left} survived SIGKILL; state kept in {state}")
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    if not state.exists():
        return
    if keep_logs:  # a failed start: keep the logs to read, drop the rest
        for sub in ("etcd", "pids"):
            shutil.rmtree(state / sub, ignore_errors=True)
        (state / "cluster.json").unlink(missing_ok=True)
    else:
        shutil.rmtree(state, ignore_errors=True)


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("up", help="build what is missing, start, print the kubeconfig path")
    start.add_argument("--nodes", type=int, default=4)
    start.add_argument("--node-cpu", default="16")
    start.add_argument("--node-memory", default="64Gi")
    start.add_argument(
        "--real-node",
        action="store_true",
        help="also start a real node: containerd, runc and a kubelet (root; see docs/real-node.md)",
    )
    start.add_argument(
        "--kueue",
        action="store_true",
        help="also start Kueue (built from its Go module) with its CRDs and webhooks",
    )
    sub.add_parser("down", help="stop everything; leaves no process behind")
    sub.add_parser("kubeconfig", help="print the kubeconfig path of the running cluster")
    sub.add_parser("build", help="only build the binaries into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            started = time.time()
            cluster = up(
                args.nodes,
                args.node_cpu,
                args.node_memory,
                real_node=args.real_node,
                kueue=args.kueue,
            )
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
            from tests.cluster import kueue

            print(build())
            print(kueue.build())
    except ClusterError as err:
        print(f"scripts/cluster: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Run as a script: continue in the importable copy (tests.cluster.launcher), the one that
    # realnode.py imports, so that both see one ClusterError and one set of children.
    sys.path.insert(0, str(HERE.parents[1]))
    from tests.cluster import launcher

    sys.exit(launcher.main(sys.argv[1:]))
