"""Resource limits for local trials: the arithmetic, and whether a mechanism holds them. Pure.

Each rank gets its own limits, as each pod does in the cluster: ``cpu`` and ``memory`` are per
rank. The mechanisms, best first (the adapters are in
:mod:`trainbed.orchestrator.local.enforcers`):

- ``cgroup-v2``: a child cgroup per rank with ``cpu.max``, ``memory.max`` and
  ``memory.oom.group``, in a subtree placed by :mod:`~trainbed.orchestrator.local.cgroup_plan`
  (as root, or in a delegated subtree without root);
- ``cgroup-v1``: the same through the v1 ``cpu`` (CFS quota) and ``memory`` hierarchies, which is
  what hosts with a hybrid hierarchy offer;
- ``fallback``: CPU affinity to ceil(cpu) cores, the thread count, and a resident-memory
  watchdog. Affinity holds a CPU limit as written only for whole cores, one disjoint set per
  rank; the watchdog kills after the fact and holds no memory limit as written. An
  address-space rlimit is not used: torch maps several GiB of virtual memory at import (CUDA
  libraries included), so any RLIMIT_AS near a realistic limit kills the import rather than
  enforcing the limit.

Every mode also sets OMP_NUM_THREADS and torch's thread count from the CPU limit (the worker does
it from the same rule), and what holds goes into ``result.json`` as ``enforcement``, with
``cpu_enforced`` and ``memory_enforced`` saying whether each level held as written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True, kw_only=True)
class Capability:
    """What an enforcer holds as written, and, where it is the fallback, why no cgroup was
    usable (for the refusal's line)."""

    mode: str
    #: a CPU quota (any fraction of a core)
    cpu_quota: bool
    #: a memory limit the kernel holds (an OOM kill at the limit, not a watchdog after it)
    memory_limit: bool
    #: a fraction of the pinned cores by stopping and continuing the ranks (no cgroup)
    duty_cycle: bool = False
    #: why the better mechanisms were not usable here ("" where one is in use)
    missing: str = ""


def disjoint(plans: list[RankLimits]) -> bool:
    """Whether each rank is pinned to cores of its own (no two ranks share one)."""
    used: set[int] = set()
    for plan in plans:
        if used & set(plan.cpus):
            return False
        used |= set(plan.cpus)
    return True


def affinity_holds(plans: list[RankLimits]) -> bool:
    """Whether CPU affinity holds these ranks' CPU limit as written: whole cores, each rank its
    own set of exactly that many cores, no two ranks sharing one."""
    whole = all(abs(p.cpu - round(p.cpu)) <= 1e-9 and len(p.cpus) == round(p.cpu) for p in plans)
    return whole and disjoint(plans)


def cpu_holds(capability: Capability, plans: list[RankLimits]) -> bool:
    """Whether this enforcer holds the ranks' CPU limit as written (the duty cycle: a share of
    each rank's own cores, so only where no two ranks share one)."""
    if capability.cpu_quota:
        return True
    return affinity_holds(plans) or (capability.duty_cycle and disjoint(plans))


def enforced_flags(
    capability: Capability, plans: list[RankLimits], allow_unenforced: bool
) -> dict[str, bool]:
    """The booleans every local ``enforcement`` record carries."""
    return {
        "cpu_enforced": cpu_holds(capability, plans),
        "memory_enforced": capability.memory_limit,
        "allow_unenforced": allow_unenforced,
    }
