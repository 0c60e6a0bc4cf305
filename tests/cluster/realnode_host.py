"""What the real node changes on the host, recorded before ``up`` and undone by ``down``.

``claim`` writes ``<state>/realnode/host.json``: the sysctls the kubelet and the CNI bridge set,
the iptables rules of every table, the top-level cgroups, and which of the kubelet's and
containerd's fixed paths already existed. ``release`` kills what runs in the ``kubepods``
cgroups, unmounts, deletes the rules and chains that were not there before, the bridges and the
bandwidth plugin's ifb devices, the new cgroups and paths, and restores the sysctls. Standard
library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

from tests.cluster import host

BRIDGE = "tb0"  # the pods' bridge; the node's address is its gateway
SERVICE_LINK = "tb0svc"  # an empty bridge that holds the API relay's and DNS's addresses
POD_SUBNET, NODE_IP = "10.244.0.0/24", "10.244.0.1"
API_IP, DNS_IP = "10.96.0.1", "10.96.0.10"  # the kubernetes and kube-dns Service addresses
OWNER = Path("/run/trainbed-real-node")  # one real node per machine: which state dir has it
#: Fixed paths that the kubelet (device plugins, container log links), containerd (shim
#: sockets) and libcni (its cache) create whatever their configured folders are.
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/lib/cni",
    "/run/containerd",
    "/var/log/containers",
    "/var/log/pods",
    "/opt/containerd",
)
SYSCTLS = (
    "net.ipv4.ip_forward",
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
)
TABLES = ("filter", "nat", "mangle", "raw")


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _rules() -> dict[str, list[str]]:
    found = {}
    for tool in ("iptables", "ip6tables"):
        for table in TABLES:
            out = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True)
            if out.returncode == 0:
                found[f"{tool}/{table}"] = out.stdout.splitlines()
    return found


def _top_cgroups() -> list[str]:
    return sorted(str(p.relative_to(host.CGROUP_ROOT)) for p in host.CGROUP_ROOT.glob("*/*"))


def owner() -> Path | None:
    """The state dir whose node holds this machine's real-node slot, or None."""
    try:
        return Path(OWNER.read_text().strip())
    except OSError:
        return None


def claim(state: Path, root: Path) -> None:
    """Record the host as it is, and mark this state dir as the owner of the machine's node."""
    other = owner()
    if other is not None and other != state and (other / "realnode").exists():
        raise host.HostError(
            f"a real node is already up for {other}: "
            f"TRAINBED_CLUSTER_DIR={other} scripts/cluster down first"
        )
    if BRIDGE in host.links():
        raise host.HostError(f"link {BRIDGE} exists: another real node (or a leftover) holds it")
    record = {
        "sysctls": {
            name: _sysctl_path(name).read_text().strip()
            for name in SYSCTLS
            if _sysctl_path(name).exists()
        },
        "rules": _rules(),
        "cgroups": _top_cgroups(),
        "paths": [p for p in HOST_PATHS if Path(p).exists()],
    }
    (root / "host.json").write_text(json.dumps(record, indent=1))
    OWNER.write_text(str(state))


def network_up() -> None:
    """The pods' bridge with the node's address, and the Service addresses on a link of their
    own (the bridge plugin refuses a bridge with a second IPv4 address it did not set)."""
    for link, addresses in ((BRIDGE, [f"{NODE_IP}/24"]), (SERVICE_LINK, [API_IP, DNS_IP])):
        host.run(["ip", "link", "add", link, "type", "bridge"], f"creating {link}")
        for address in addresses:
            host.run(["ip", "addr", "add", address, "dev", link], f"adding {address}")
        host.run(["ip", "link", "set", link, "up"], f"setting {link} up")


def _kubepods() -> list[Path]:
    return [p for p in host.CGROUP_ROOT.glob("*/kubepods*") if p.is_dir()]


def kill_pods(timeout: float = 15) -> None:
    """SIGKILL every process in the kubepods cgroups, until none is left."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        pids = set()
        for top in _kubepods():
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids |= {int(p) for p in procs.read_text().split()}
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    raise host.HostError("processes in the kubepods cgroups survived SIGKILL")


def kill_programs(bin_dir: Path, timeout: float = 10) -> None:
    """SIGKILL what still runs from ``bin_dir`` (containerd's shims outlive containerd)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        left = []
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError, ValueError):
                if entry.name.isdigit() and Path(os.readlink(entry / "exe")).parent == bin_dir:
                    left.append(int(entry.name))
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise host.HostError(f"processes of {bin_dir} survived SIGKILL")


def _restore_rules(before: dict[str, list[str]]) -> None:
    """Delete the rules and chains that were not there at ``claim``."""
    for key, lines in _rules().items():
        tool, table = key.split("/")
        old = set(before.get(key, []))
        new_rules = [line for line in lines if line.startswith("-A ") and line not in old]
        new_chains = [
            line.split()[1] for line in lines if line.startswith("-N ") and line not in old
        ]
        for rule in reversed(new_rules):
            args = shlex.split(rule)
            subprocess.run([tool, "-t", table, "-D", *args[1:]], capture_output=True)
        for chain in new_chains:
            subprocess.run([tool, "-t", table, "-F", chain], capture_output=True)
        for chain in new_chains:
            subprocess.run([tool, "-t", table, "-X", chain], capture_output=True)


def _remove_links() -> None:
    ports = subprocess.run(
        ["ip", "-o", "link", "show", "master", BRIDGE], capture_output=True, text=True
    ).stdout.splitlines()
    names = [line.split(":")[1].strip().split("@")[0] for line in ports]
    names += [n for n in host.links() if n.startswith("bwp")]  # the bandwidth plugin's ifbs
    for name in [*names, BRIDGE, SERVICE_LINK]:
        if name in host.links():
            subprocess.run(["ip", "link", "del", name], capture_output=True)


def _remove_cgroups(before: list[str]) -> None:
    known = set(before)
    for top in host.CGROUP_ROOT.glob("*/*"):
        rel = str(top.relative_to(host.CGROUP_ROOT))
        if not top.is_dir() or rel in known:
            continue
        if not top.name.startswith(("kubepods", "k8s.io")):
            continue
        for dirpath, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def release(state: Path, root: Path) -> None:
    """Undo what the node changed (the processes are gone already)."""
    try:
        record = json.loads((root / "host.json").read_text())
    except (OSError, ValueError):
        record = {"sysctls": {}, "rules": None, "cgroups": _top_cgroups(), "paths": HOST_PATHS}
    host.unmount_under(root, "/run/containerd", "/var/lib/kubelet")
    if record["rules"] is not None:
        _restore_rules(record["rules"])
    _remove_links()
    _remove_cgroups(record["cgroups"])
    for name, value in record["sysctls"].items():
        with contextlib.suppress(OSError):
            _sysctl_path(name).write_text(value)
    for path in HOST_PATHS:
        if path not in record["paths"]:
            host.remove_tree(Path(path))
    with contextlib.suppress(OSError):
        if Path(OWNER.read_text().strip()) == state:
            OWNER.unlink()
    left = [p for p in _kubepods() if str(p.relative_to(host.CGROUP_ROOT)) not in record["cgroups"]]
    if left:
        raise host.HostError(f"cgroups left behind: {left}")
