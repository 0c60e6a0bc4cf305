"""``scripts/cluster up --real-node``: one real node beside the kwok nodes.

containerd v2 with Debian's runc, a kubelet of the pinned Kubernetes release, the CNI plugins of
Debian's ``containernetworking-plugins`` (bridge + host-local, then bandwidth; loopback), CoreDNS
for ``cluster.local``, and a relay so that pods reach the API server at 10.96.0.1:443. Everything
lives in ``<state>/realnode``; what the node changes outside it (cgroups, iptables, links, a few
fixed paths of the kubelet and containerd, sysctls) is recorded at ``up`` and undone by
``teardown``. The node is tainted and labelled ``trainbed.io/real-node=true`` (``NoSchedule``),
so only pods that tolerate it land there. See docs/real-node.md. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.cluster import host, launcher, realnode_build, realnode_host, realnode_volume

NODE_NAME = "trainbed-real-node"
TAINT = {"key": "trainbed.io/real-node", "value": "true", "effect": "NoSchedule"}
LABEL = ("trainbed.io/real-node", "true")
API_IP, DNS_IP = realnode_host.API_IP, realnode_host.DNS_IP
CLUSTER_DOMAIN = "cluster.local"
PROCESSES = ("kubelet", "containerd", "coredns", "apiserver-relay")
NEEDS = {  # path or command -> the Debian package that brings it
    "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "/usr/lib/cni/bandwidth": "containernetworking-plugins",
    "iptables": "iptables",
    "socat": "socat",
    "ip": "iproute2",
    "tc": "iproute2",
    "gcc": "gcc",
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
    "mount": "mount",
}


def _log(message: str) -> None:
    host.log("real-node", message)


def preflight() -> None:
    """Fail early, in one line, where this machine cannot host the node; install what apt can."""
    host.require_root(
        "scripts/cluster up --real-node needs root (containerd, the kubelet, cgroups, iptables)"
    )
    if (
        not Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        raise host.HostError("no cgroup cpu controller under /sys/fs/cgroup: the kubelet needs one")
    host.ensure_packages(NEEDS, "real-node")


def _dir(state: Path) -> Path:
    return state / "realnode"


def alive(state: Path) -> bool:
    pids = launcher._pids(state, PROCESSES)
    return len(pids) == len(PROCESSES) and all(launcher._alive(p) for p in pids.values())


def up(cluster: launcher.Cluster) -> None:
    """Add the real node to ``cluster`` (a no-op when it is already there and Ready)."""
    state = cluster.state
    if alive(state) and _node_ready(cluster):
        return
    teardown(state)
    _reclaim_left_behind(state)
    preflight()
    started = time.time()
    paths = {**realnode_build.build_all(), "runc": shutil.which("runc")}
    root = _dir(state)
    for sub in ("pki", "containerd", "kubelet", "cni/net.d", "cni/networks", "coredns"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    try:
        realnode_host.claim(state, root)
        _start(cluster, root, paths)
    except BaseException:
        teardown(state)
        raise
    _log(f"node {NODE_NAME} Ready in {time.time() - started:.1f} s")


def _reclaim_left_behind(state: Path) -> None:
    """Tear down the node of another state dir when none of its processes runs any more.

    A run that was killed (a CI job cut off, a session ended) never reached ``down``: its
    owner mark, bridge, rules and cgroups stay, and would refuse every later node on this
    machine. A node with any process still running is left to ``claim``, which refuses it.
    """
    other = realnode_host.owner()
    if other is None or other == state or not _dir(other).exists():
        return
    with launcher._locked(launcher._lock_path(other)):  # not while its own up is under way
        if any(launcher._alive(pid) for pid in launcher._pids(other, PROCESSES).values()):
            return
        _log(f"the node of {other} was left behind (none of its processes runs): tearing it down")
        teardown(other)


def _start(cluster: launcher.Cluster, root: Path, paths: dict) -> None:
    state, pki = cluster.state, cluster.state / "pki"
    realnode_host.network_up()
    kubeconfig = _kubelet_credentials(root, pki, cluster.server)
    sock = root / "containerd.sock"
    (root / "cni" / "net.d" / "10-trainbed.conflist").write_text(json.dumps(_cni_config(root)))
    (root / "containerd" / "config.toml").write_text(_containerd_config(root, paths))
    launcher._spawn(
        state,
        "containerd",
        [str(paths["containerd"]), "--config", str(root / "containerd" / "config.toml")],
        env={"PATH": f"{Path(paths['containerd']).parent}:{os.environ['PATH']}"},
    )
    ctr = ctr_command(state)
    launcher._wait(
        "containerd",
        lambda: (
            sock.exists() and subprocess.run([*ctr, "version"], capture_output=True).returncode == 0
        ),
        30,
        state,
        "containerd",
    )
    host.run([*ctr, "images", "import", str(paths["pause"])], "importing the pause image")
    ready_port = launcher._free_port()
    (root / "coredns" / "Corefile").write_text(_corefile(cluster, ready_port))
    launcher._spawn(
        state, "coredns", [str(paths["coredns"]), "-conf", str(root / "coredns" / "Corefile")]
    )
    relay = f"TCP-LISTEN:443,bind={API_IP},fork,reuseaddr"
    target = f"TCP:127.0.0.1:{cluster.server.rsplit(':', 1)[1]}"
    launcher._spawn(state, "apiserver-relay", ["socat", relay, target])
    _cluster_objects(cluster)
    ready = f"http://127.0.0.1:{ready_port}/ready"  # CoreDNS has synced with the API
    launcher._wait("CoreDNS", lambda: launcher._http_ok(ready), 30, state, "coredns")
    (root / "kubelet.yaml").write_text(json.dumps(_kubelet_config(root, pki), indent=2))
    launcher._spawn(
        state,
        "kubelet",
        [
            str(paths["kubelet"]),
            f"--config={root / 'kubelet.yaml'}",
            f"--kubeconfig={kubeconfig}",
            f"--root-dir={root / 'kubelet'}",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={realnode_host.NODE_IP}",
            f"--node-labels={LABEL[0]}={LABEL[1]}",
            "--v=1",
        ],
    )
    launcher._wait(f"node {NODE_NAME} Ready", lambda: _node_ready(cluster), 120, state, "kubelet")
    realnode_volume.results_volume(state, *realnode_volume.DEFAULT_CLAIM)


def ctr_command(state: Path) -> list[str]:
    """``ctr`` against the node's containerd, in the CRI's namespace."""
    ctr = realnode_build.CONTAINERD_DIR / "bin" / "ctr"
    return [str(ctr), "--address", str(_dir(state) / "containerd.sock"), "-n", "k8s.io"]


def _node_ready(cluster: launcher.Cluster) -> bool:
    status, body = launcher._get(
        f"{cluster.server}/api/v1/nodes/{NODE_NAME}", cluster.state / "pki"
    )
    if status != 200:
        return False
    conditions = (json.loads(body).get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _kubelet_credentials(root: Path, pki: Path, server: str) -> Path:
    """A client certificate for ``system:node:<name>`` (the Node authorizer) and its kubeconfig."""
    subject = f"/O=system:nodes/CN=system:node:{NODE_NAME}"
    launcher._client_certificate(pki, root / "pki" / "kubelet", subject)
    kubeconfig = root / "kubelet.kubeconfig"
    launcher._kubeconfig(kubeconfig, server, pki, root / "pki" / "kubelet")
    return kubeconfig


def _cluster_objects(cluster: launcher.Cluster) -> None:
    """Let the API server's kubelet client use the kubelet API (logs, exec), and hold the DNS
    address as the ``kube-dns`` Service so no other Service is given it."""
    pki, server = cluster.state / "pki", cluster.server
    objects = [
        (
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": "trainbed:kube-apiserver-kubelet-client"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:kubelet-api-admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": launcher.KUBELET_CLIENT_USER,
                    }
                ],
            },
        ),
        (
            "/api/v1/namespaces/kube-system/services",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "kube-dns", "labels": {"k8s-app": "kube-dns"}},
                "spec": {
                    "clusterIP": DNS_IP,
                    "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP"},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
                    ],
                },
            },
        ),
    ]
    for path, body in objects:
        status = launcher._request("POST", server + path, pki, body)
        if status not in (201, 409):
            raise launcher.ClusterError(
                f"creating {body['metadata']['name']} failed: HTTP {status}"
            )


def _containerd_config(root: Path, paths: dict) -> str:
    """containerd v2's config (version 4): every folder under ``root``; Debian's runc."""
    c = root / "containerd"
    cri = "plugins.'io.containerd.cri.v1.runtime'"
    return f"""version = 4
root = '{c / "root"}'
state = '{c / "state"}'
temp = '{c / "tmp"}'
disabled_plugins = ['io.containerd.nri.v1.nri']

[plugins.'io.containerd.server.v1.grpc']
  address = '{root / "containerd.sock"}'
[plugins.'io.containerd.server.v1.ttrpc']
  address = '{root / "containerd.sock.ttrpc"}'
[plugins.'io.containerd.internal.v1.opt']
  path = '{c / "opt"}'
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{paths["pause_ref"]}'
[{cri}]
  # no CAP_SYS_RESOURCE on these machines: a negative oom_score_adj fails every sandbox
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [{cri}.containerd]
    default_runtime_name = 'runc'
    [{cri}.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [{cri}.containerd.runtimes.runc.options]
        BinaryName = '{paths["runc"]}'
        Root = '{c / "runc"}'
        SystemdCgroup = false
  [{cri}.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '{root / "cni" / "net.d"}'
    max_conf_num = 1
[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
"""


def _cni_config(root: Path) -> dict:
    """bridge + host-local, then bandwidth (the kubernetes.io/*-bandwidth pod annotations)."""
    ipam = {
        "type": "host-local",
        "ranges": [[{"subnet": realnode_host.POD_SUBNET, "gateway": realnode_host.NODE_IP}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": str(root / "cni" / "networks"),
    }
    return {
        "cniVersion": "1.0.0",
        "name": "trainbed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": realnode_host.BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": ipam,
            },
            {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        ],
    }


def _corefile(cluster: launcher.Cluster, ready_port: int) -> str:
    return f""".:53 {{
    bind {DNS_IP}
    errors
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        kubeconfig {cluster.kubeconfig} trainbed
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 5
    }}
    forward . /etc/resolv.conf
    cache 5
}}
"""


def _kubelet_config(root: Path, pki: Path) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,  # this machine has cgroup v1 only
        "cgroupDriver": "cgroupfs",
        "containerRuntimeEndpoint": f"unix://{root / 'containerd.sock'}",
        "address": realnode_host.NODE_IP,
        "port": launcher._free_port(),
        "readOnlyPort": 0,
        "healthzPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [DNS_IP],
        "registerWithTaints": [TAINT],
        "podLogsDirectory": str(root / "pod-logs"),
        "volumePluginDir": str(root / "volume-plugins"),
        "failSwapOn": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "2%",
            "imagefs.available": "2%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 30,
    }


def _forget_node(state: Path) -> None:
    """Delete the Node object where the control plane outlives the node (best effort)."""
    try:
        server = json.loads((state / "cluster.json").read_text())["server"]
        url = f"{server}/api/v1/nodes/{NODE_NAME}"
        request = urllib.request.Request(url, method="DELETE")
        context = launcher._ssl_context(state / "pki")
        urllib.request.urlopen(request, context=context, timeout=5).close()
    except (OSError, ValueError, KeyError):
        pass


def teardown(state: Path) -> None:
    """Stop the node and undo what it changed on the host (see ``realnode_host.release``)."""
    root = _dir(state)
    if not root.exists():
        return
    pids = launcher._pids(state, PROCESSES)
    launcher._stop(pids, state, names=("kubelet",))  # no restarts while pods are killed
    _forget_node(state)
    realnode_volume.forget(state)
    realnode_host.kill_pods()
    launcher._stop(pids, state)
    realnode_host.kill_programs(realnode_build.CONTAINERD_DIR / "bin")
    realnode_host.release(state, root)
    for name in PROCESSES:
        (state / "pids" / f"{name}.pid").unlink(missing_ok=True)
    host.remove_tree(root)  # the logs stay in <state>/logs
