"""``scripts/cluster down`` leaves nothing of a real node behind: no process, mount, link,
iptables chain or rule, cgroup, or fixed path of the kubelet and containerd."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.cluster import host, launcher, realnode, realnode_build, realnode_host
from tests.realnode.conftest import cannot_host, stop_session_node, wait_for

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1800)]


def _rules() -> set[str]:
    return {f"{key} {line}" for key, lines in realnode_host._rules().items() for line in lines}


def _node_things(snapshot: dict[str, set[str]], state: Path) -> dict[str, set[str]]:
    """What in a snapshot can be the node's. Other work on this machine goes on meanwhile (the
    local executor's trials make cgroups under trainbed/), and is not the node's to clean."""
    marks = {
        "mounts": (str(state), "/run/containerd", "/var/lib/kubelet", "/var/lib/cni", "netns"),
        "links": ("tb0", "veth", "bwp"),
        "chains": ("KUBE-", "CNI-"),
        "rules": ("KUBE-", "CNI-", "10.244.", "10.96.", realnode_host.BRIDGE),
    }

    def ours(key: str, item: str) -> bool:
        if key == "cgroups":
            return any(p.startswith("kubepods") or p == "k8s.io" for p in item.split("/"))
        return key not in marks or any(mark in item for mark in marks[key])

    return {key: {item for item in items if ours(key, item)} for key, items in snapshot.items()}


def test_down_leaves_nothing_behind() -> None:
    reason = cannot_host() or stop_session_node()  # one real node per machine
    if reason:
        pytest.skip(reason)
    state = Path(tempfile.mkdtemp(prefix="rn-down-", dir="/tmp"))
    before = _node_things({**host.snapshot(realnode_host.HOST_PATHS), "rules": _rules()}, state)
    try:
        cluster = launcher.up(nodes=1, state=state, real_node=True)
        kubectl = [launcher.kubectl_path(), f"--kubeconfig={cluster.kubeconfig}"]
        # a pod that uses all of it: sandbox, CNI bridge + bandwidth (an ifb), iptables
        # masquerade, kubepods cgroups with a CPU quota
        pause = realnode_build.pause_image()[1]  # a tiny image that runs forever
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": "busy",
                "annotations": {
                    "kubernetes.io/ingress-bandwidth": "10M",
                    "kubernetes.io/egress-bandwidth": "10M",
                },
            },
            "spec": {
                "nodeSelector": {realnode.LABEL[0]: realnode.LABEL[1]},
                "tolerations": [{**realnode.TAINT, "operator": "Equal"}],
                "containers": [
                    {
                        "name": "pause",
                        "image": pause,
                        "imagePullPolicy": "Never",
                        "resources": {"limits": {"cpu": "200m", "memory": "64Mi"}},
                    }
                ],
            },
        }
        subprocess.run(
            [*kubectl, "create", "-f", "-"], input=json.dumps(pod), text=True, check=True
        )

        def running() -> bool:
            out = subprocess.run(
                [*kubectl, "get", "pod", "busy", "-o", "jsonpath={.status.phase}"],
                capture_output=True,
                text=True,
            )
            return out.stdout == "Running"

        wait_for(running, 120, "the pod on the real node")
        during = _node_things({**host.snapshot(realnode_host.HOST_PATHS), "rules": _rules()}, state)
        for key in ("processes", "mounts", "links", "chains", "rules", "cgroups", "paths"):
            assert during[key] - before[key], f"the node made no {key}: the check would be blind"
    finally:
        launcher.down(state)
    after = _node_things({**host.snapshot(realnode_host.HOST_PATHS), "rules": _rules()}, state)
    assert not state.exists()
    for key in before:
        assert after[key] - before[key] == set(), f"{key} left behind"
        if key in ("processes", "paths"):
            assert before[key] - after[key] == set(), f"{key} gone that were there before"


def _snapshot(state: Path) -> dict[str, set[str]]:
    return _node_things({**host.snapshot(realnode_host.HOST_PATHS), "rules": _rules()}, state)


def test_a_node_left_by_a_killed_run_is_torn_down_by_the_next() -> None:
    """A run killed before ``down`` (a CI job cut off) leaves its owner mark, bridge and rules:
    the next ``up`` on this machine tears that node down instead of refusing, and ``down``
    then leaves nothing of either behind."""
    reason = cannot_host() or stop_session_node()
    if reason:
        pytest.skip(reason)
    killed = Path(tempfile.mkdtemp(prefix="rn-killed-", dir="/tmp"))
    state = Path(tempfile.mkdtemp(prefix="rn-next-", dir="/tmp"))
    before = _snapshot(state)
    try:
        launcher.up(nodes=1, state=killed, real_node=True)
        names = (*launcher.COMPONENTS, *realnode.PROCESSES)
        for pid in launcher._pids(killed, names).values():
            os.kill(pid, signal.SIGKILL)  # the whole run, as a cut-off job loses it
        assert realnode_host.owner() == killed
        launcher.up(nodes=1, state=state, real_node=True)
        assert realnode_host.owner() == state
        assert not (killed / "realnode").exists(), "the left-behind node was not torn down"
    finally:
        launcher.down(state)
        launcher.down(killed)
    after = _snapshot(state)
    for key in before:
        assert after[key] - before[key] == set(), f"{key} left behind"
