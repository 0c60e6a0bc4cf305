"""The one outcome function, table-driven over both backends' observations.

Local cases build the TrialObservation the local executor builds (exit codes from its processes,
the cgroup's OOM counter, the driver's stop); Kubernetes cases go through
``kube.status.observation`` from API-shaped Job and pod dicts. Both end in ``outcome()``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.unit.test_trial_status import T0, T2, T3, job, pod
from trainbed.contract.records import Result
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.kube.objects.trial_status import observation
from trainbed.orchestrator.outcome import (
    TrialObservation,
    failure_cause,
    first_failure,
    last_error_line,
    outcome,
)

START = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
SPEC = TrialSpec(
    campaign="c",
    trial_id="t1",
    seed=1,
    workload=Workload(parallelism=2),
    resources=Resources(cpu="750m", memory="1Gi"),
)


def local(**kw: Any) -> TrialObservation:
    """What the local executor sees of two ranks that exited 0, unless told otherwise."""
    args: dict[str, Any] = dict(
        exit_codes={0: 0, 1: 0},
        started=START,
        started_at="2026-01-01T00:00:00+00:00",
        finished_at="2026-01-01T00:00:10+00:00",
        enforcement={"mode": "cgroup-v1"},
    )
    args.update(kw)
    return TrialObservation(**args)


def kube(job_obj: dict, pods: list, *, visible: bool = True) -> TrialObservation:
    return observation(job_obj, pods, results_visible=visible)


def indexed(index: int, **kw: Any) -> dict[str, Any]:
    """A pod of the Indexed Job with its completion index, as the Job controller sets it."""
    p = pod(**kw)
    p["metadata"] = {"annotations": {"batch.kubernetes.io/job-completion-index": str(index)}}
    return p


RANK0_LOG = "trainbed worker: rank 0 of 2, trial t1 of c, 1 threads, on host\n"
RANK1_LOG = (
    "trainbed worker: rank 1 of 2, trial t1 of c, 1 threads, on host\n"
    "Traceback (most recent call last):\n"
    '  File "/x/trainer.py", line 12, in run\n'
    "    torch.cuda.set_device(1)\n"
    "RuntimeError: CUDA error: invalid device ordinal\n"
    "CUDA kernel errors might be asynchronously reported at some other API call.\n"
    "trainbed worker: rank 1 failed: RuntimeError: CUDA error: invalid device ordinal (exit 1)\n"
)
SUCCEEDED = Result(status="succeeded", final_accuracy=0.9, wall_time_s=7.0)
PEER_DIED = Result(status="failed", reason="peer rank 1 died")

CASES: list[tuple[str, Result | None, TrialObservation, str, str]] = [
    # (case, the worker's result, what the executor saw, status, part of the reason)
    ("local: success keeps the worker's numbers", SUCCEEDED, local(), "succeeded", ""),
    (
        "local: the cgroup's OOM counter beats a dead-peer failure",
        PEER_DIED,
        local(exit_codes={0: 1, 1: -9}, oom_killed=True),
        "oom_killed",
        "peer rank 1 died",
    ),
    (
        "local: no result, exit codes and the log's last line",
        None,
        local(exit_codes={0: 1, 1: 0}, log_tails={0: "x\nValueError: boom\n"}),
        "failed",
        "rank 0: ValueError: boom; rank 0 exited with code 1",
    ),
    (
        # the case: rank 1 raised; rank 0 was killed after the peer grace
        "local: the first rank that failed, by time, and its own exception line",
        None,
        local(
            exit_codes={0: -9, 1: 1},
            exit_times={0: START + 28.0, 1: START + 8.0},
            log_tails={0: RANK0_LOG, 1: RANK1_LOG},
        ),
        "failed",
        "rank 1: RuntimeError: CUDA error: invalid device ordinal; rank 0 exited on SIGKILL",
    ),
    (
        "local: rank 0 wrote its own failure, but rank 1 failed first",
        Result(status="failed", reason="DistBackendError: Connection reset by peer"),
        local(
            exit_codes={0: 1, 1: 1},
            exit_times={0: START + 9.0, 1: START + 8.0},
            log_tails={0: RANK0_LOG, 1: RANK1_LOG},
        ),
        "failed",
        "rank 1: RuntimeError: CUDA error: invalid device ordinal; rank 0: DistBackendError",
    ),
    (
        "local: exited 0 without a result",
        None,
        local(),
        "failed",
        "without writing a result",
    ),
    (
        "local: the driver's timeout",
        None,
        local(exit_codes={0: -15, 1: -15}, stopped=("timed_out", "ran past 300 s")),
        "timed_out",
        "ran past 300 s",
    ),
    (
        "local: the fallback memory watchdog",
        None,
        local(exit_codes={0: -9, 1: -9}, memory_exceeded=True),
        "failed",
        "memory limit exceeded",
    ),
    (
        "local: the worker succeeded but a rank was killed",
        SUCCEEDED,
        local(exit_codes={0: 0, 1: -9}),
        "failed",
        "rank 1 exited on SIGKILL",
    ),
    (
        "kube: a complete Job and the worker's result",
        SUCCEEDED,
        kube(job(("Complete", ""), completion=T3), [indexed(0, phase="Succeeded", exit_code=0)]),
        "succeeded",
        "",
    ),
    (
        "kube: a complete Job, no results volume mounted",
        None,
        kube(job(("Complete", ""), completion=T3), [indexed(0, exit_code=0)], visible=False),
        "succeeded",
        "",
    ),
    (
        "kube: a complete Job whose worker left no result on the volume (kwok)",
        None,
        kube(job(("Complete", ""), completion=T3), [indexed(0, exit_code=0)], visible=True),
        "succeeded",
        "no result.json",
    ),
    (
        "kube: exit 137 through the podFailurePolicy",
        None,
        kube(
            job(("Failed", "PodFailurePolicy")),
            [indexed(1, phase="Failed", exit_code=137, reason="OOMKilled")],
        ),
        "oom_killed",
        "rank 1 exited with code 137",
    ),
    (
        "kube: OOM beats what the surviving worker wrote",
        PEER_DIED,
        kube(
            job(("Failed", "PodFailurePolicy")),
            [indexed(0, exit_code=1), indexed(1, exit_code=137, reason="OOMKilled")],
        ),
        "oom_killed",
        "worker said: failed: peer rank 1 died",
    ),
    (
        "kube: the Job's deadline",
        None,
        kube(job(("Failed", "DeadlineExceeded")), [indexed(0)]),
        "timed_out",
        "DeadlineExceeded",
    ),
    (
        "kube: the deadline while unschedulable",
        None,
        kube(job(("Failed", "DeadlineExceeded")), [pod("Pending", unschedulable=True)]),
        "timed_out",
        "Unschedulable: 0/4 nodes are available",
    ),
    (
        "kube: a crash",
        None,
        kube(job(("Failed", "BackoffLimitExceeded")), [indexed(0, exit_code=1, reason="Error")]),
        "failed",
        "BackoffLimitExceeded: Error (exit 1)",
    ),
    (
        "kube: evicted, retried, then complete",
        SUCCEEDED,
        kube(
            job(("Complete", ""), completion=T3),
            [pod("Failed", evicted=True), indexed(0, phase="Succeeded", exit_code=0)],
        ),
        "succeeded",
        "1 pod(s) evicted and retried",
    ),
]


@pytest.mark.parametrize(
    ("case", "worker", "seen", "status", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_outcome(
    case: str, worker: Result | None, seen: TrialObservation, status: str, reason: str
) -> None:
    result = outcome(SPEC, worker, seen)
    assert result.status == status
    assert reason in result.reason
    assert result.trial_id == "t1" and result.campaign == "c" and result.world_size == 2
    if worker is not None:
        assert result.final_accuracy == worker.final_accuracy, "metrics come from the worker"
    else:
        assert result.final_accuracy is None, "nothing is invented where the worker wrote none"


def test_local_times_and_enforcement() -> None:
    result = outcome(SPEC, None, local(exit_codes={0: 1, 1: 0}))
    assert result.wall_time_s == pytest.approx(10.0, abs=1e-6)
    assert result.enforcement == {"mode": "cgroup-v1"}
    assert result.exit_codes == {"0": 1, "1": 0}  # type: ignore[attr-defined]
    kept = outcome(SPEC, SUCCEEDED, local())
    assert kept.wall_time_s == 7.0, "the worker's own clock wins"


def test_kubernetes_times_come_from_the_api() -> None:
    seen = kube(job(("Complete", ""), completion=T3), [indexed(0, exit_code=0)], visible=False)
    result = outcome(SPEC, None, seen)
    assert (result.started_at, result.finished_at) == (T2, T3)
    assert result.wall_time_s == pytest.approx(1.0)
    assert result.enforcement == {"mode": "kubernetes"}
    assert T0 < result.started_at


def test_the_pods_read_back_enforcement_is_kept() -> None:
    """In a pod only the worker can read its cgroup: its record stays, under the API's mode."""
    seen = kube(job(("Complete", ""), completion=T3), [indexed(0, exit_code=0)], visible=True)
    read = {"mode": "kubernetes", "cpu": "500m", "read_back": {"cpu_limit": 0.5}}
    worker = SUCCEEDED.model_copy(update={"enforcement": read})
    assert outcome(SPEC, worker, seen).enforcement == read


@pytest.mark.parametrize(
    ("log", "line"),
    [
        (RANK1_LOG, "RuntimeError: CUDA error: invalid device ordinal"),
        (
            "a\ntorch.distributed.DistBackendError: NCCL error\nmore\n",
            "torch.distributed.DistBackendError: NCCL error",
        ),
        ("x.py:3: UserWarning: careful\nKeyboardInterrupt\n", "KeyboardInterrupt"),
        ("no exception here\nlast words\n", "last words"),
        ("", ""),
    ],
)
def test_last_error_line(log: str, line: str) -> None:
    assert last_error_line(log) == line


def test_first_failure_without_times_prefers_an_own_exit_to_a_signal() -> None:
    seen = local(exit_codes={0: -9, 1: 1, 2: 0})
    assert first_failure(seen) == 1
    assert failure_cause(local(exit_codes={0: 0, 1: -9})) == "", "no log: the codes say it"
    assert failure_cause(local(exit_codes={0: 1, 1: 0}, log_tails={1: "x\n"})) == ""


def test_kueue_preemption_is_a_note_not_a_failure() -> None:
    """A trial Kueue preempted waited and ran again in the same Job: its outcome is the run's,
    with each preemption's reason kept."""
    done = job(("Complete", ""), completion=T3)
    seen = kube(done, [indexed(0, exit_code=0), indexed(1, exit_code=0)])
    seen = dataclasses.replace(seen, preemptions=("Preempted: by a higher-priority workload",))
    result = outcome(SPEC, SUCCEEDED, seen)
    assert result.status == "succeeded" and result.final_accuracy == SUCCEEDED.final_accuracy
    assert result.preemptions == ["Preempted: by a higher-priority workload"]
    assert "preempted by Kueue 1x and run again" in result.reason
    assert outcome(SPEC, SUCCEEDED, kube(done, [indexed(0, exit_code=0)])).preemptions is None


def test_other_admitted_work_is_kept_beside_the_result() -> None:
    done = job(("Complete", ""), completion=T3)
    seen = kube(done, [indexed(0, exit_code=0), indexed(1, exit_code=0)])
    beside = dataclasses.replace(seen, admitted_beside=("job-urgent-1a2b3",))
    result = outcome(SPEC, SUCCEEDED, beside)
    assert result.admitted_beside == ["job-urgent-1a2b3"] and result.status == "succeeded"
    assert outcome(SPEC, SUCCEEDED, seen).admitted_beside is None
