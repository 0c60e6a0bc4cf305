"""The enforcer's interface, and the enforcers without cgroups: affinity alone (``fallback``)
and affinity with a measured duty cycle (``duty-cycle``).

An enforcer prepares each rank's limits before it starts, hears when a trial's ranks run and when
they have exited, watches memory where no kernel limit holds it, and says what it holds
(:attr:`Enforcer.capability`) for the refusal before the first trial. The cgroup enforcers are in
:mod:`trainbed.orchestrator.local.cgroups`; :mod:`trainbed.orchestrator.local.enforcers` picks one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainbed.orchestrator.local.duty_cycle import PERIOD_S, DutyCycle, run_share
from trainbed.orchestrator.local.limits import Capability, RankLimits


@dataclass
class RankCgroup:
    """The cgroup directories of one rank (one per hierarchy for v1)."""

    paths: list[Path] = field(default_factory=list)
    memory_dir: Path | None = None


class Enforcer:
    """Base enforcer: the fallback (affinity, threads, RSS watchdog)."""

    mode = "fallback"

    def __init__(self, missing: str = "") -> None:
        #: why no cgroup was usable, for the refusal's line
        self.missing = missing

    @property
    def capability(self) -> Capability:
        return Capability(mode=self.mode, cpu_quota=False, memory_limit=False, missing=self.missing)

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

    def read_back(self, group: RankCgroup) -> dict[str, Any] | None:
        """The rank's limits as the kernel's files say (None: no cgroup holds them)."""
        return None

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

    def started(self, trial_id: str, pids: list[int], plans: list[RankLimits]) -> None:
        """The trial's ranks (process group leaders) are running."""

    def finished(self, trial_id: str) -> dict[str, Any]:
        """The trial's ranks have exited: what the enforcer measured, for ``enforcement``."""
        return {}

    def cleanup(self, group: RankCgroup) -> None:
        pass

    def close(self) -> None:
        """Undo what this enforcer set up for the whole run (nothing, here)."""


class DutyCycled(Enforcer):
    """No cgroup: affinity to whole cores, and a fraction of them by a duty cycle
    (:mod:`~trainbed.orchestrator.local.duty_cycle`), measured; memory only watched."""

    mode = "duty-cycle"

    def __init__(self, missing: str = "") -> None:
        super().__init__(missing)
        self.cycles: dict[str, DutyCycle] = {}

    @property
    def capability(self) -> Capability:
        return Capability(
            mode=self.mode,
            cpu_quota=False,
            memory_limit=False,
            duty_cycle=True,
            missing=self.missing,
        )

    def describe(self, limits: RankLimits) -> dict[str, Any]:
        share = run_share(limits.cpu, len(limits.cpus))
        return {
            **super().describe(limits),
            "cpu_enforced_by": f"affinity+threads+duty-cycle (SIGSTOP/SIGCONT: runs {share:g} "
            f"of every {PERIOD_S * 1000:g} ms)",
        }

    def started(self, trial_id: str, pids: list[int], plans: list[RankLimits]) -> None:
        share = run_share(plans[0].cpu, len(plans[0].cpus))
        self.cycles[trial_id] = DutyCycle(pids, share).start()

    def finished(self, trial_id: str) -> dict[str, Any]:
        cycle = self.cycles.pop(trial_id, None)
        return {} if cycle is None else {"cpu_achieved_cores": cycle.stop()}


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
