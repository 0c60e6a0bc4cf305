"""The session-scoped control plane for tests marked ``cluster``.

It is started once (built first if needed) through the same launcher as ``scripts/cluster``, and
stopped at the end if this session started it. The tests fail, loudly, when it cannot be built or
started: a skipped integration test proves nothing. ``TRAINBED_SKIP_CLUSTER=1`` skips them
deliberately, e.g. for a quick local run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.cluster import launcher


@pytest.fixture(scope="session")
def cluster() -> Iterator[launcher.Cluster]:
    if os.environ.get("TRAINBED_SKIP_CLUSTER") == "1":
        pytest.skip("TRAINBED_SKIP_CLUSTER=1")
    already = launcher._read_cluster(launcher.STATE)
    try:
        started = launcher.up(nodes=4)
    except launcher.ClusterError as err:
        pytest.fail(f"the control plane could not start: {err}", pytrace=False)
    os.environ["KUBECONFIG"] = str(started.kubeconfig)
    yield started
    if already is None and os.environ.get("TRAINBED_KEEP_CLUSTER") != "1":
        launcher.down(launcher.STATE)
