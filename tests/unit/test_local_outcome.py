"""What the local executor records for a finished trial, and the per-rank limit arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from trainbed.contract.records import Result
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.local.executor import outcome, rank_environment
from trainbed.orchestrator.local.limits import cfs_quota_us, cpu_max, plan_limits

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
SPEC = TrialSpec(
    campaign="c",
    trial_id="t1",
    seed=1,
    workload=Workload(parallelism=2),
    resources=Resources(cpu="750m", memory="1Gi"),
)


def _outcome(worker: Result | None, **kw: object) -> Result:
    args: dict = dict(
        exit_codes={0: 0, 1: 0},
        oom_killed=False,
        memory_exceeded=False,
        stop_status=None,
        stop_reason="",
        enforcement={"mode": "cgroup-v1"},
        started=START,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:10+00:00",
        log_tails={},
    )
    args.update(kw)
    return outcome(SPEC, worker, **args)


def test_success_keeps_the_worker_numbers_and_adds_enforcement() -> None:
    worker = Result(status="succeeded", final_accuracy=0.9, wall_time_s=7.0)
    result = _outcome(worker)
    assert result.status == "succeeded" and result.final_accuracy == 0.9
    assert result.wall_time_s == 7.0 and result.enforcement == {"mode": "cgroup-v1"}


def test_oom_overrides_a_dead_peer_failure() -> None:
    worker = Result(status="failed", reason="peer rank 1 died")
    result = _outcome(worker, exit_codes={0: 1, 1: -9}, oom_killed=True)
    assert result.status == "oom_killed"
    assert "peer rank 1 died" in result.reason


def test_no_result_is_failed_with_exit_codes_and_log_tail() -> None:
    result = _outcome(None, exit_codes={0: 1, 1: 0}, log_tails={0: "x\nValueError: boom\n"})
    assert result.status == "failed"
    assert "rank 0 exited with code 1" in result.reason and "ValueError: boom" in result.reason
    assert result.wall_time_s == pytest.approx(10.0, abs=1e-6)
    assert result.trial_id == "t1" and result.world_size == 2


def test_timeout_and_memory_watchdog() -> None:
    assert _outcome(None, stop_status="timed_out", stop_reason="late").status == "timed_out"
    watchdog = _outcome(None, exit_codes={0: -9, 1: -9}, memory_exceeded=True)
    assert watchdog.status == "failed" and "memory" in watchdog.reason


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
