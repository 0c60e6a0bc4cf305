"""Whether this host holds a campaign's resource factors as written, before the first trial. Pure.

A resource *factor* is an independent variable: a level that no mechanism here holds as written
(a fraction of a core under CPU affinity, a memory limit only watched) would measure something
other than what the design says, silently. So such a campaign is refused in one line that names
the factor, the level, what is missing and the commands that work, unless the run says
``--allow-unenforced``; then every trial's ``enforcement`` says what held
(:func:`~trainbed.orchestrator.local.limits.enforced_flags`). Constant resources are not refused:
their records say honestly what held.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.local.limits import Capability, RankLimits, cpu_holds, plan_limits

#: Where the campaign file's factors may target a limit that the local enforcer holds.
CPU_TARGET = "resources.cpu"
MEMORY_TARGET = "resources.memory"


@dataclass(frozen=True)
class Unenforced:
    """A resource factor's level that no mechanism here holds as written."""

    factor: str
    target: str
    level: str
    missing: str


def unenforced(
    factors: Sequence[tuple[str, str]],
    trials: Sequence[TrialSpec],
    capability: Capability,
    available: list[int],
) -> Unenforced | None:
    """The first factor level that this host does not hold as written, in
    the trials' order; None when every resource factor's every level holds. ``factors`` are
    (name, target) pairs."""
    for name, target in factors:
        for trial in trials:
            level = trial.levels.get(name)
            if target == CPU_TARGET:
                plans = plan_limits(trial.resources, trial.workload.parallelism, available)
                if not cpu_holds(capability, plans):
                    missing = _cpu_missing(capability, plans, len(available))
                    return Unenforced(name, target, str(trial.resources.cpu), missing)
            elif target == MEMORY_TARGET and not capability.memory_limit:
                missing = (
                    "memory is only watched (the rank is killed after its resident memory passes "
                    "the limit), never held"
                )
                written = str(level if level is not None else trial.resources.memory)
                return Unenforced(name, target, written, missing)
    return None


def _cpu_missing(capability: Capability, plans: list[RankLimits], cores: int) -> str:
    if capability.duty_cycle:
        return (
            f"the duty cycle holds a share of each rank's own cores, but {len(plans)} ranks "
            f"of {len(plans[0].cpus)} cores each share the {cores} cores here"
        )
    return (
        f"CPU affinity holds only whole cores, a set of its own per rank ({cores} here), "
        "and no CPU quota is available"
    )


def refusal(found: Unenforced, capability: Capability, command: str) -> str:
    """The one line: the factor, the level, what is missing, and the commands that work."""
    why = f" (cgroups: {capability.missing})" if capability.missing else ""
    return (
        f"factor {found.factor} ({found.target}) level {found.level} is not enforced as "
        f"written here: {found.missing}{why}. Run as root (sudo {command}), "
        "or in a delegated cgroup v2 subtree "
        f"(systemd-run --user --scope -p Delegate=yes {command}; see docs/limits.md), "
        "or add --allow-unenforced to run it anyway, recorded as not enforced"
    )
