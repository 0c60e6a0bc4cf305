"""The cgroup enforcers (v1 and v2) of local trials, and the adapter of the v2 plan.

For cgroup v2, :func:`read_host` takes the snapshot that the pure
:func:`~trainbed.orchestrator.local.cgroup_plan.plan_v2` decides from, and :func:`apply_plan`
carries the plan out; at the end (:meth:`CgroupV2.close`) the enforcer removes what it created and
disables what it enabled, and nothing else. After preparing a rank's cgroup,
:meth:`~trainbed.orchestrator.local.enforcer.Enforcer.read_back` reads its limits back from the
kernel's files for ``enforcement``.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from trainbed.orchestrator.local.cgroup_plan import (
    CgroupDir,
    HostCgroups,
    Mkdir,
    V2Plan,
    Write,
    chain,
    own_unified,
    plan_v2,
    undo,
    unified_mount,
)
from trainbed.orchestrator.local.enforcer import Enforcer, RankCgroup
from trainbed.orchestrator.local.limits import (
    CFS_PERIOD_US,
    Capability,
    RankLimits,
    cfs_quota_us,
    cpu_max,
)
from trainbed.worker.cgroup_limits import cpu_v1, cpu_v2, memory_limit


class _Cgroup(Enforcer):
    """What both cgroup versions share: the kernel enforces, and counts OOM kills."""

    #: The file under the memory cgroup whose ``oom_kill`` line counts OOM kills.
    oom_file = ""

    @property
    def capability(self) -> Capability:
        return Capability(mode=self.mode, cpu_quota=True, memory_limit=True)

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
            _rmdir(path.parent, tries=1)  # the trial's folder, once its last rank is gone


class CgroupV1(_Cgroup):
    mode = "cgroup-v1"
    oom_file = "memory.oom_control"

    def __init__(self, cpu_root: Path, memory_root: Path) -> None:
        super().__init__()
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

    def read_back(self, group: RankCgroup) -> dict[str, Any] | None:
        cpu_dir, mem_dir = group.paths
        record = cpu_v1(
            (cpu_dir / "cpu.cfs_quota_us").read_text(), (cpu_dir / "cpu.cfs_period_us").read_text()
        )
        record["memory_limit_bytes"] = memory_limit((mem_dir / "memory.limit_in_bytes").read_text())
        return {"cgroup": str(cpu_dir), **record}


class CgroupV2(_Cgroup):
    mode = "cgroup-v2"
    oom_file = "memory.events"

    def __init__(self, root: Path, plan: V2Plan | None = None, created: bool = False) -> None:
        super().__init__()
        self.root = root
        #: the plan that made ``root`` (its enabling writes are undone at the end)
        self.plan = plan
        #: whether this enforcer created ``root`` (then it removes it at the end)
        self.created = created

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

    def read_back(self, group: RankCgroup) -> dict[str, Any] | None:
        (path,) = group.paths
        record = cpu_v2((path / "cpu.max").read_text())
        record["memory_limit_bytes"] = memory_limit((path / "memory.max").read_text())
        return {"cgroup": str(path), **record}

    def close(self) -> None:
        """Remove the subtree if this enforcer made it, then disable, bottom-up, what its plan
        enabled. Either fails harmlessly where someone else uses it by now."""
        if self.created:
            _rmdir(self.root, tries=1)
        if self.plan is not None and self.created and not self.root.exists():
            for write in reversed(self.plan.enabled):
                try:
                    _apply(undo(write))
                except OSError:
                    break  # a child uses it: leave this and everything above as it is


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


def _rmdir(path: Path, tries: int = 50) -> None:
    for _ in range(tries):
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if tries > 1:
                time.sleep(0.02)  # processes just killed take a moment to leave the cgroup


def _enable_controllers(path: Path) -> None:
    control = path / "cgroup.subtree_control"
    enabled = control.read_text().split()
    missing = [c for c in ("cpu", "memory") if c not in enabled]
    if missing:
        control.write_text(" ".join(f"+{c}" for c in missing))


def read_host(proc: Path = Path("/proc/self")) -> HostCgroups:
    """The snapshot :func:`~trainbed.orchestrator.local.cgroup_plan.plan_v2` decides from: the
    own cgroup v2 and its ancestors, as this process sees them."""
    proc_cgroup = _read(proc / "cgroup")
    mountinfo = _read(proc / "mountinfo")
    mount, own = unified_mount(mountinfo), own_unified(proc_cgroup)
    dirs: dict[str, CgroupDir] = {}
    if mount is not None and own is not None:
        mount_root, mountpoint = mount
        for path in chain(own, mount_root):
            if not path.startswith(mount_root):
                continue
            directory = Path(mountpoint) / path[len(mount_root) :].lstrip("/")
            if directory.is_dir():
                dirs[path] = _cgroup_dir(directory)
    return HostCgroups(proc_cgroup=proc_cgroup, mountinfo=mountinfo, dirs=dirs)


def _cgroup_dir(directory: Path) -> CgroupDir:
    control = directory / "cgroup.subtree_control"
    return CgroupDir(
        controllers=frozenset(_read(directory / "cgroup.controllers").split()),
        subtree_control=frozenset(_read(control).split()),
        populated=bool(_read(directory / "cgroup.procs").split()),
        writable=os.access(directory, os.W_OK | os.X_OK) and os.access(control, os.W_OK),
        is_root=not (directory / "cgroup.type").exists(),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _apply(step: Write | Mkdir) -> None:
    if isinstance(step, Mkdir):
        Path(step.path).mkdir(exist_ok=True)
    else:
        Path(step.path).write_text(step.value)


def apply_plan(plan: V2Plan) -> CgroupV2:
    """Carry the plan out, in order. Where a write fails, what it created is removed again."""
    root = Path(plan.subtree)
    created = not root.exists()
    try:
        for step in plan.steps:
            _apply(step)
    except OSError:
        CgroupV2(root, plan, created).close()
        raise
    return CgroupV2(root, plan, created)


def try_v2() -> Enforcer | str:
    plan = plan_v2(read_host())
    if isinstance(plan, str):
        return plan
    try:
        return apply_plan(plan)
    except OSError as err:
        return f"cgroup v2: {err}"


def _own_cgroup(hierarchy: str) -> str | None:
    """This process's path in a v1 hierarchy (``hierarchy`` = 'memory', 'cpu')."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        if hierarchy in controllers.split(","):
            return path
    return None


def try_v1() -> Enforcer | str:
    roots: dict[str, Path] = {}
    for hierarchy, name in (("cpu", "cpu"), ("memory", "memory")):
        own = _own_cgroup(hierarchy)
        mount = Path("/sys/fs/cgroup") / name
        if own is None or not (mount / "cgroup.procs").exists():
            return f"no cgroup v1 {name} hierarchy"
        roots[hierarchy] = mount / own.lstrip("/")
    probes = [roots["cpu"] / "trainbed", roots["memory"] / "trainbed"]
    try:
        for probe in probes:
            probe.mkdir(exist_ok=True)
            test = probe / f"probe-{os.getpid()}"
            test.mkdir(exist_ok=True)
            test.rmdir()
    except OSError as err:
        return f"cgroup v1: {err.strerror or err} creating {probe}"
    return CgroupV1(roots["cpu"], roots["memory"])
