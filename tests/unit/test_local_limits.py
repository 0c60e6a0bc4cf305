"""The local executor's per-rank limit arithmetic and the environment of a rank."""

from __future__ import annotations

import pytest

from trainbed.contract.trial import Resources
from trainbed.orchestrator.local.limits import cfs_quota_us, cpu_max, plan_limits
from trainbed.orchestrator.local.rank_process import rank_environment


@pytest.mark.parametrize(
    ("cpu", "parallelism", "available", "threads", "cores"),
    [
        ("750m", 2, [0, 1], 1, [(0,), (1,)]),
        ("2", 2, [0, 1], 2, [(0, 1), (0, 1)]),
        ("1500m", 1, [0, 1, 2, 3], 2, [(0, 1)]),
        ("1", 3, [0, 1], 1, [(0,), (1,), (0,)]),
    ],
)
def test_plan_limits(
    cpu: str, parallelism: int, available: list[int], threads: int, cores: list[tuple[int, ...]]
) -> None:
    plans = plan_limits(Resources(cpu=cpu, memory="1Gi"), parallelism, available)
    assert [p.cpus for p in plans] == cores
    assert {p.threads for p in plans} == {threads}
    assert plans[0].memory == 2**30


def test_cgroup_values() -> None:
    assert cpu_max(0.75) == "75000 100000"
    assert cfs_quota_us(1.5) == 150000


def test_rank_environment() -> None:
    plans = plan_limits(Resources(cpu="750m"), 2, [0, 1])
    env = rank_environment(
        {"PATH": "/bin", "PET_NNODES": "9", "JOB_COMPLETION_INDEX": "3"},
        rank=1,
        world_size=2,
        port=1234,
        limits=plans[1],
        enforcement={"mode": "x"},
        collective_timeout_s=30,
    )
    assert env["RANK"] == "1" and env["WORLD_SIZE"] == "2" and env["MASTER_PORT"] == "1234"
    assert env["OMP_NUM_THREADS"] == "1" and "PET_NNODES" not in env
    assert "JOB_COMPLETION_INDEX" not in env and env["TRAINBED_ENFORCEMENT"] == '{"mode": "x"}'
