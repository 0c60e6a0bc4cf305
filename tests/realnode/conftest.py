"""The session's real node (``scripts/cluster up --real-node``) with the test image in it.

The node is brought up once per session through the same launcher as ``scripts/cluster``, and
the image is built (or found in the cache) by ``scripts/image``'s code and imported into it. A
session that started the node stops it at the end (``TRAINBED_KEEP_CLUSTER=1`` keeps it); one
that started the whole cluster stops that too. Where this machine cannot host a node (not root,
no cgroup cpu controller, too little free disk for the image, found before the import starts)
the tests skip with the reason; ``TRAINBED_SKIP_REAL_NODE=1`` skips them on purpose. Any other
failure to start fails them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import host, image, launcher, realnode, waiting


def cannot_host() -> str | None:
    """Why this machine cannot host a real node, or None."""
    if os.environ.get("TRAINBED_SKIP_REAL_NODE") == "1":
        return "TRAINBED_SKIP_REAL_NODE=1"
    if os.geteuid() != 0:
        return "a real node needs root (mounts, cgroups, iptables, bridges)"
    if not (
        Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists()
        or Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        return "no cgroup cpu controller under /sys/fs/cgroup"
    return None


@dataclass
class RealNode:
    state: Path
    kubeconfig: Path
    server: str
    image: str
    started_cluster: bool
    started_node: bool
    stopped: bool = False

    def stop(self) -> None:
        """Stop what this session started (the node, or the whole cluster)."""
        if self.stopped or os.environ.get("TRAINBED_KEEP_CLUSTER") == "1":
            return
        self.stopped = True
        if self.started_cluster:
            launcher.down(self.state)
        elif self.started_node:
            with launcher._locked(launcher._lock_path(self.state)):
                realnode.teardown(self.state)


_SESSION: dict[str, RealNode] = {}


@pytest.fixture(scope="session")
def real_node() -> Iterator[RealNode]:
    reason = cannot_host()
    if reason:
        pytest.skip(reason)
    state = launcher.STATE
    had_cluster = launcher._read_cluster(state) is not None
    had_node = had_cluster and realnode.alive(state)
    node = RealNode(state, Path(), "", "", not had_cluster, not had_node)
    try:
        cluster = launcher.up(nodes=1, state=state, real_node=True)
        node.kubeconfig, node.server = cluster.kubeconfig, cluster.server
        record = image.build()
        image.import_into(record, state)
    except host.NoRoom as err:  # the disk, not the code: found before anything filled it
        node.stop()
        pytest.skip(f"this machine has no room for the real node's image: {err}")
    except (launcher.ClusterError, host.HostError) as err:
        pytest.fail(f"the real node could not start: {err}", pytrace=False)
    node.image = record["ref"]
    _SESSION["node"] = node
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    yield node
    node.stop()


def stop_session_node() -> str | None:
    """Stop this session's node, so another can come up; the reason when that is not ours to do."""
    node = _SESSION.get("node")
    if node is not None:
        node.stop()
        return None
    if realnode.alive(launcher.STATE):
        return f"a real node that this session did not start is up for {launcher.STATE}"
    return None


def wait_for(check: Any, timeout: float, what: str) -> Any:
    """:func:`tests.cluster.waiting.wait_for` every 0.5 s: these checks run kubectl."""
    return waiting.wait_for(check, timeout, what, interval=0.5)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"
