"""Resource limits for local trials: the arithmetic (pure) and the enforcers (adapters).

Each rank gets its own limits, as each pod does in the cluster: ``cpu`` and ``memory`` are per
rank. Enforcement, best first:

- ``cgroup-v2``: a child cgroup per rank with ``cpu.max``, ``memory.max`` and
  ``memory.oom.group``, wherever this process may create one with those controllers;
- ``cgroup-v1``: the same through the v1 ``cpu`` (CFS quota) and ``memory`` hierarchies, which is
  what hosts with a hybrid hierarchy offer;
- ``fallback``: CPU affinity to ceil(cpu) cores, the thread count, and a resident-memory
  watchdog. An address-space rlimit is not used: torch maps several GiB of virtual memory at
  import (CUDA libraries included), so any RLIMIT_AS near a realistic limit kills the import
  rather than enforcing the limit.

Every mode also sets OMP_NUM_THREADS and torch's thread count from the CPU limit (the worker does
it from the same rule), and the mode in force goes into ``result.json`` as ``enforcement``.
"""

from __future__ import annotations

import math
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainbed.contract.env import ENFORCEMENT_MODE
from trainbed.contract.quantity import cpu_cores, memory_bytes, threads_for_cpu
from trainbed.contract.trial import Resources

CFS_PERIOD_US = 100_000


@dataclass(frozen=True)
class RankLimits:
    """One rank's limits, in the units enforcers need."""

    cpu: float
    memory: int
    threads: int
    cpus: tuple[int, ...]  # the affinity set the fallback pins to


def plan_limits(resources: Resources, parallelism: int, available: list[int]) -> list[RankLimits]:
    """Per-rank limits; ranks get disjoint cores for affinity where there are enough."""
    assert available, "at least one CPU is available"
    cpu = cpu_cores(resources.cpu)
    memory = memory_bytes(resources.memory)
    threads = threads_for_cpu(resources.cpu, len(available))
    per_rank = min(len(available), max(1, math.ceil(cpu - 1e-9)))
    plans = []
    for rank in range(parallelism):
        first = (rank * per_rank) % len(available)
        cores = tuple(available[(first + i) % len(available)] for i in range(per_rank))
        plans.append(RankLimits(cpu=cpu, memory=memory, threads=threads, cpus=cores))
    return plans


def cpu_max(cpu: float, period_us: int = CFS_PERIOD_US) -> str:
    """cgroup v2 ``cpu.max`` for a CPU limit, e.g. 0.75 -> '75000 100000'."""
    return f"{max(1000, round(cpu * period_us))} {period_us}"


def cfs_quota_us(cpu: float, period_us: int = CFS_PERIOD_US) -> int:
    """cgroup v1 ``cpu.cfs_quota_us`` for a CPU limit."""
    return max(1000, round(cpu * period_us))


@dataclass
class RankCgroup:
    """The cgroup directories of one rank (one per hierarchy for v1)."""

    paths: list[Path] = field(default_factory=list)
    memory_dir: Path | None = None


class Enforcer:
    """Base enforcer: the fallback (affinity, threads, RSS watchdog)."""

    mode = "fallback"

    def describe(self, limits: RankLimits) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cpu_cores": limits.cpu,
            "memory_bytes": limits.memory,
            "threads": limits.threads,
            "affinity": list(limits.cpus),
            "memory_enforced_by": "rss-watchdog",
            "cpu_enforced_by": "affinity+threads",
        }

    def prepare(self, trial_id: str, rank: int, limits: RankLimits) -> RankCgroup:
        return RankCgroup()

    def attach(self, group: RankCgroup, pid: int, limits: RankLimits) -> None:
        try:
            os.sched_setaffinity(pid, set(limits.cpus))
        except OSError:
            pass

    def over_memory(self, group: RankCgroup, pid: int, limits: RankLimits) -> bool:
        """Fallback watchdog: resident memory of the rank's process tree above the limit."""
        return _tree_rss(pid) > limits.memory

    def oom_killed(self, group: RankCgroup) -> bool:
        return False

    def cleanup(self, group: RankCgroup) -> None:
        pass


class _Cgroup(Enforcer):
    """What both cgroup versions share: the kernel enforces, and counts OOM kills."""

    #: The file under the memory cgroup whose ``oom_kill`` line counts OOM kills.
    oom_file = ""

    def attach(self, group: RankCgroup, pid: int, limits: RankLimits) -> None:
        for path in group.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def over_memory(self, group: RankCgroup, pid: int, limits: RankLimits) -> bool:
        return False  # the kernel enforces memory; no watchdog

    def oom_killed(self, group: RankCgroup) -> bool:
        if group.memory_dir is None:
            return False
        return _counter(group.memory_dir / self.oom_file, "oom_kill") > 0

    def cleanup(self, group: RankCgroup) -> None:
        for path in group.paths:
            _kill_and_remove(path)


class CgroupV1(_Cgroup):
    mode = "cgroup-v1"
    oom_file = "memory.oom_control"

    def __init__(self, cpu_root: Path, memory_root: Path) -> None:
        self.cpu_root = cpu_root
        self.memory_root = memory_root

    def describe(self, limits: RankLimits) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cpu_cores": limits.cpu,
            "memory_bytes": limits.memory,
            "threads": limits.threads,
            "cpu_enforced_by": f"cpu.cfs_quota_us={cfs_quota_us(limits.cpu)}"
            f"/cpu.cfs_period_us={CFS_PERIOD_US}",
            "memory_enforced_by": f"memory.limit_in_bytes={limits.memory}",
        }

    def prepare(self, trial_id: str, rank: int, limits: RankLimits) -> RankCgroup:
        cpu_dir = self.cpu_root / "trainbed" / trial_id / f"rank-{rank}"
        mem_dir = self.memory_root / "trainbed" / trial_id / f"rank-{rank}"
        for path in (cpu_dir, mem_dir):
            _kill_and_remove(path)
            path.mkdir(parents=True, exist_ok=True)
        (cpu_dir / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (cpu_dir / "cpu.cfs_quota_us").write_text(str(cfs_quota_us(limits.cpu)))
        (mem_dir / "memory.limit_in_bytes").write_text(str(limits.memory))
        return RankCgroup(paths=[cpu_dir, mem_dir], memory_dir=mem_dir)


class CgroupV2(_Cgroup):
    mode = "cgroup-v2"
    oom_file = "memory.events"

    def __init__(self, root: Path) -> None:
        self.root = root

    def describe(self, limits: RankLimits) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "cpu_cores": limits.cpu,
            "memory_bytes": limits.memory,
            "threads": limits.threads,
            "cpu_enforced_by": f"cpu.max={cpu_max(limits.cpu)}",
            "memory_enforced_by": f"memory.max={limits.memory}, memory.oom.group=1",
        }

    def prepare(self, trial_id: str, rank: int, limits: RankLimits) -> RankCgroup:
        trial_dir = self.root / trial_id
        trial_dir.mkdir(parents=True, exist_ok=True)
        _enable_controllers(trial_dir)
        path = trial_dir / f"rank-{rank}"
        _kill_and_remove(path)
        path.mkdir()
        (path / "cpu.max").write_text(cpu_max(limits.cpu))
        (path / "memory.max").write_text(str(limits.memory))
        (path / "memory.oom.group").write_text("1")
        return RankCgroup(paths=[path], memory_dir=path)


def _counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _kill_and_remove(path: Path) -> None:
    """Kill whatever still runs in a cgroup (and its children), then remove the directories."""
    if not path.exists():
        return
    for child in sorted(path.rglob("cgroup.procs"), key=lambda p: -len(p.parts)):
        try:
            pids = [int(p) for p in child.read_text().split()]
        except OSError:
            pids = []
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for directory in sorted(
        (p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
    ):
        _rmdir(directory)
    _rmdir(path)


def _rmdir(path: Path) -> None:
    import time

    for _ in range(50):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.02)  # processes just killed take a moment to leave the cgroup


def _enable_controllers(path: Path) -> None:
    control = path / "cgroup.subtree_control"
    enabled = control.read_text().split()
    missing = [c for c in ("cpu", "memory") if c not in enabled]
    if missing:
        control.write_text(" ".join(f"+{c}" for c in missing))


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and its descendants, from /proc."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            status = Path(f"/proc/{current}/status").read_text()
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
            stack.extend(int(c) for c in children)
        except (OSError, ValueError):
            continue
    return total


def _own_cgroup(hierarchy: str) -> str | None:
    """This process's path in a v1 hierarchy (``hierarchy`` = 'memory', 'cpu'), or v2 ('')."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if hierarchy == "" and controllers == "" and line.startswith("0::"):
            return path
        if hierarchy and hierarchy in controllers.split(","):
            return path
    return None


def _try_v2() -> Enforcer | None:
    root = Path("/sys/fs/cgroup")
    own = _own_cgroup("")
    if own is None or not (root / "cgroup.controllers").exists():
        return None
    if not {"cpu", "memory"} <= set((root / "cgroup.controllers").read_text().split()):
        return None
    # Children may take controllers only from a parent without processes of its own, so the
    # trial cgroups hang under a "trainbed" sibling of ours, beside our own cgroup.
    base = root / own.lstrip("/")
    for parent in (base, base.parent):
        probe = parent / "trainbed"
        try:
            probe.mkdir(exist_ok=True)
            _enable_controllers(probe)
            if {"cpu", "memory"} <= set((probe / "cgroup.subtree_control").read_text().split()):
                return CgroupV2(probe)
        except OSError:
            continue
    return None


def _try_v1() -> Enforcer | None:
    roots: dict[str, Path] = {}
    for hierarchy, name in (("cpu", "cpu"), ("memory", "memory")):
        own = _own_cgroup(hierarchy)
        mount = Path("/sys/fs/cgroup") / name
        if own is None or not (mount / "cgroup.procs").exists():
            return None
        roots[hierarchy] = mount / own.lstrip("/")
    probes = [roots["cpu"] / "trainbed", roots["memory"] / "trainbed"]
    try:
        for probe in probes:
            probe.mkdir(exist_ok=True)
            test = probe / f"probe-{os.getpid()}"
            test.mkdir(exist_ok=True)
            test.rmdir()
    except OSError:
        return None
    return CgroupV1(roots["cpu"], roots["memory"])


def detect_enforcer(prefer: str | None = None) -> Enforcer:
    """The best enforcement this process may use; ``prefer`` (or TRAINBED_ENFORCEMENT_MODE)
    forces a mode, e.g. ``fallback`` for tests of that path."""
    prefer = prefer or os.environ.get(ENFORCEMENT_MODE) or None
    if prefer == "fallback":
        return Enforcer()
    if prefer in (None, "cgroup-v2"):
        found = _try_v2()
        if found:
            return found
    if prefer in (None, "cgroup-v1"):
        found = _try_v1()
        if found:
            return found
    return Enforcer()
