"""Which resource factor levels the local enforcers hold as written, and the one-line refusal."""

from __future__ import annotations

import pytest

from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.local.enforceable import Unenforced, refusal, unenforced
from trainbed.orchestrator.local.limits import Capability, enforced_flags, plan_limits

FALLBACK = Capability(mode="fallback", cpu_quota=False, memory_limit=False, missing="no root")
CGROUP = Capability(mode="cgroup-v2", cpu_quota=True, memory_limit=True)
DUTY = Capability(mode="duty-cycle", cpu_quota=False, memory_limit=False, duty_cycle=True)
CPU = [("cpu", "resources.cpu")]
MEMORY = [("memory", "resources.memory")]


def trials(target: str, levels: list[str], parallelism: int = 2) -> list[TrialSpec]:
    key = target.removeprefix("resources.")
    return [
        TrialSpec(
            campaign="c",
            trial_id=f"t{i}",
            seed=1,
            workload=Workload(parallelism=parallelism),
            resources=Resources(**{key: level}),
            levels={key: level},
        )
        for i, level in enumerate(levels)
    ]


@pytest.mark.parametrize(
    ("factors", "campaign", "capability", "cores", "refused"),
    [
        # the quickstart's cpu factor: 500m cannot be held by affinity
        (CPU, trials("resources.cpu", ["500m", "1"]), FALLBACK, 2, ("cpu", "500m")),
        # whole cores, one set per rank: affinity holds them
        (CPU, trials("resources.cpu", ["1", "2"], parallelism=1), FALLBACK, 2, None),
        # 2 ranks x 2 cores on 2 cores: the ranks share, so "2" does not hold
        (CPU, trials("resources.cpu", ["1", "2"]), FALLBACK, 2, ("cpu", "2")),
        (CPU, trials("resources.cpu", ["1", "2"]), FALLBACK, 4, None),
        (CPU, trials("resources.cpu", ["500m", "1"]), CGROUP, 2, None),
        # the duty cycle holds a share of each rank's own cores, not of cores ranks share
        (CPU, trials("resources.cpu", ["500m", "1"]), DUTY, 2, None),
        (CPU, trials("resources.cpu", ["500m", "1500m"]), DUTY, 2, ("cpu", "1500m")),
        (MEMORY, trials("resources.memory", ["120Mi", "1Gi"]), DUTY, 2, ("memory", "120Mi")),
        # the watchdog holds no memory level
        (MEMORY, trials("resources.memory", ["120Mi", "1Gi"]), FALLBACK, 2, ("memory", "120Mi")),
        (MEMORY, trials("resources.memory", ["120Mi", "1Gi"]), CGROUP, 2, None),
        # a factor on anything else is not a limit
        ([("lr", "workload.lr")], trials("resources.cpu", ["500m"]), FALLBACK, 2, None),
    ],
)
def test_unenforced(factors, campaign, capability, cores, refused) -> None:
    found = unenforced(factors, campaign, capability, list(range(cores)))
    assert (None if found is None else (found.factor, found.level)) == refused


def test_refusal_is_one_line_naming_the_factor_level_missing_and_commands() -> None:
    found = unenforced(CPU, trials("resources.cpu", ["500m", "1"]), FALLBACK, [0, 1])
    assert isinstance(found, Unenforced)
    line = refusal(found, FALLBACK, "trainbed run q.yaml")
    assert "\n" not in line
    assert line.startswith("factor cpu (resources.cpu) level 500m is not enforced as written")
    assert "CPU affinity holds only whole cores" in line and "(cgroups: no root)" in line
    assert "sudo trainbed run q.yaml" in line and "--allow-unenforced" in line
    assert "Delegate=yes trainbed run q.yaml" in line


@pytest.mark.parametrize(
    ("capability", "cpu", "flags"),
    [
        (FALLBACK, "500m", (False, False)),
        (FALLBACK, "1", (True, False)),
        (CGROUP, "500m", (True, True)),
    ],
)
def test_enforced_flags(capability: Capability, cpu: str, flags: tuple[bool, bool]) -> None:
    plans = plan_limits(Resources(cpu=cpu), 2, [0, 1])
    got = enforced_flags(capability, plans, allow_unenforced=True)
    assert (got["cpu_enforced"], got["memory_enforced"]) == flags
    assert got["allow_unenforced"] is True
