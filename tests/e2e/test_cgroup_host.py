"""The cgroup enforcers against this host's real cgroupfs: a rank's cgroup gets the limits,
reads them back, holds a busy process to its CPU quota, and leaves nothing behind.

cgroup v2 runs where this process may create a cgroup with cpu and memory (root on a v2 host,
or a delegated subtree); elsewhere it skips with the plan's reason. cgroup v1 runs as root on a
hybrid host (this development machine)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainbed.orchestrator.local.cgroup_plan import plan_v2
from trainbed.orchestrator.local.enforcers import Enforcer, detect_enforcer, read_host
from trainbed.orchestrator.local.limits import RankLimits
from trainbed.orchestrator.local.rank_process import rank_preexec

LIMITS = RankLimits(cpu=0.5, memory=256 * 2**20, threads=1, cpus=(0,))
BUSY = "import time\nend = time.time() + 3\nwhile time.time() < end: pass\n"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy_share(enforcer: Enforcer, trial: str) -> tuple[dict, float]:
    """Read back a rank's limits, then run a busy loop in its cgroup: its CPU over wall."""
    group = enforcer.prepare(trial, 0, LIMITS)
    try:
        back = enforcer.read_back(group)
        proc = subprocess.Popen(
            [sys.executable, "-c", BUSY + "import sys; sys.stdin.read()"],
            stdin=subprocess.PIPE,
            preexec_fn=rank_preexec(group.paths, None),  # noqa: PLW1509 - as the executor does
        )
        begin = time.time()
        while time.time() - begin < 3.0 and proc.poll() is None:
            time.sleep(0.05)
        share = _cpu_seconds(proc.pid) / (time.time() - begin)
        proc.communicate(b"", timeout=30)
    finally:
        enforcer.cleanup(group)
    assert not group.paths[0].exists(), "the rank's cgroup is removed"
    assert back is not None
    return back, share


@pytest.mark.timeout(60)
def test_cgroup_v2_on_this_host() -> None:
    plan = plan_v2(read_host())
    if isinstance(plan, str):
        pytest.skip(f"no writable cgroup v2 with cpu and memory here: {plan}")
    own = Path("/proc/self/cgroup").read_text()
    enforcer = detect_enforcer("cgroup-v2")
    assert enforcer.mode == "cgroup-v2", enforcer.missing
    try:
        back, share = _busy_share(enforcer, "t-host-check")
        assert back["cpu_quota_us"] == 50_000 and back["cpu_period_us"] == 100_000
        assert back["memory_limit_bytes"] == LIMITS.memory
        assert share < 0.65, f"a busy loop under cpu.max 0.5 used {share:.2f} cores"
    finally:
        enforcer.close()
    assert Path("/proc/self/cgroup").read_text() == own, "this process was never moved"
    if getattr(enforcer, "created", False):
        assert not Path(plan.subtree).exists(), "the subtree trainbed created is removed"


@pytest.mark.timeout(60)
def test_cgroup_v1_on_this_host() -> None:
    enforcer = detect_enforcer("cgroup-v1")
    if enforcer.mode != "cgroup-v1":
        pytest.skip(f"no writable cgroup v1 cpu and memory hierarchies here: {enforcer.missing}")
    back, share = _busy_share(enforcer, "t-host-check")
    assert back["cpu_quota_us"] == 50_000 and back["memory_limit_bytes"] == LIMITS.memory
    assert share < 0.65, f"a busy loop under cfs_quota 0.5 used {share:.2f} cores"
