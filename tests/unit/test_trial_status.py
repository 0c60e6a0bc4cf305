"""A trial's phase and timestamps from its Job and pods, table-driven over API-shaped dicts.

Its outcome (status and reason) is tested through the one outcome function in test_outcome.py."""

from __future__ import annotations

from typing import Any

import pytest

from trainbed.contract.kueue import QUEUE_LABEL
from trainbed.contract.records import Result
from trainbed.orchestrator.kube.objects.trial_status import (
    job_finished,
    observation,
    trial_status,
)

T0, T1, T2, T3 = (f"2026-01-01T00:00:0{i}Z" for i in range(4))


def job(*conditions: tuple[str, str], completion: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": "c-t1", "creationTimestamp": T0},
        "status": {
            "conditions": [
                {"type": t, "status": "True", "reason": r, "lastTransitionTime": T3, "message": ""}
                for t, r in conditions
            ],
            **({"completionTime": completion} if completion else {}),
        },
    }


def pod(
    phase: str = "Running",
    *,
    exit_code: int | None = None,
    reason: str | None = None,
    unschedulable: bool = False,
    evicted: bool = False,
) -> dict[str, Any]:
    conditions = [
        {
            "type": "PodScheduled",
            "status": "False" if unschedulable else "True",
            "reason": "Unschedulable" if unschedulable else None,
            "message": "0/4 nodes are available: insufficient cpu" if unschedulable else None,
            "lastTransitionTime": T1,
        }
    ]
    if evicted:
        conditions.append({"type": "DisruptionTarget", "status": "True"})
    state: dict[str, Any] = {"running": {"startedAt": T2}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": reason, "startedAt": T2}}
    return {
        "status": {
            "phase": phase,
            "conditions": conditions,
            "startTime": T1,
            **({"reason": "Evicted"} if evicted else {}),
            "containerStatuses": [] if unschedulable else [{"state": state}],
        }
    }


CASES = [
    ("running", job(), [pod()], "Running"),
    (
        "complete",
        job(("Complete", ""), completion=T3),
        [pod("Succeeded", exit_code=0)],
        "Succeeded",
    ),
    (
        "oom via podFailurePolicy",
        job(("Failed", "PodFailurePolicy")),
        [pod("Failed", exit_code=137, reason="OOMKilled")],
        "Failed",
    ),
    ("deadline", job(("Failed", "DeadlineExceeded")), [pod()], "Failed"),
    ("unschedulable, still waiting", job(), [pod("Pending", unschedulable=True)], "Unschedulable"),
    (
        "scheduled, not started",
        job(),
        [{"status": {"conditions": pod()["status"]["conditions"]}}],
        "Scheduled",
    ),
    ("created", job(), [], "Created"),
]


@pytest.mark.parametrize(("case", "job_obj", "pods", "phase"), CASES, ids=[c[0] for c in CASES])
def test_phase_and_timestamps(case: str, job_obj: dict, pods: list, phase: str) -> None:
    entry = trial_status(job_obj, pods)
    assert entry["phase"] == phase
    assert entry["created"] == T0
    assert entry["status"] is None, "the outcome is decided by outcome(), not here"
    if phase in ("Succeeded", "Failed"):
        assert job_finished(job_obj) and entry["finished"] == T3
    if phase in ("Running", "Succeeded"):
        assert entry["scheduled"] == T1 and entry["started"] == T2
    if phase == "Unschedulable":
        assert "insufficient cpu" in entry["reason"]


def test_a_finished_entry_carries_the_recorded_outcome() -> None:
    failed = job(("Failed", "PodFailurePolicy"))
    recorded = Result(status="oom_killed", reason="a rank exceeded its memory limit")
    entry = trial_status(failed, [pod("Failed", exit_code=137)], recorded)
    assert (entry["status"], entry["reason"]) == ("oom_killed", recorded.reason)


def queued_job(suspend: bool | None, started: str | None = None, *conditions: str) -> dict:
    """A Job with Kueue's queue label: its ``spec.suspend`` (None: the spec is not at hand),
    ``status.startTime``, and ``Suspended`` conditions by status."""
    obj = job()
    obj["metadata"]["labels"] = {QUEUE_LABEL: "team-a"}
    if suspend is not None:
        obj["spec"] = {"suspend": suspend}
    if started:
        obj["status"]["startTime"] = started
    obj["status"]["conditions"] = [
        {"type": "Suspended", "status": c, "lastTransitionTime": T1} for c in conditions
    ]
    return obj


QUEUE_CASES = [
    # (case, job, pods, phase, queued, admitted)
    ("no queue: nothing queued", job(), [pod()], "Running", None, None),
    # created suspended: queued before the Job controller has said anything
    ("created suspended", queued_job(True), [], "Queued", T0, None),
    ("waiting, condition only", queued_job(None, None, "True"), [], "Queued", T0, None),
    ("admitted, pods running", queued_job(False, T2, "False"), [pod()], "Running", T0, T2),
    # admitted before the Job controller ever saw it suspended: no condition, a start time
    ("admitted at once", queued_job(False, T2), [pod()], "Running", T0, T2),
    # an eviction (preemption) suspends it again; its pods are going away
    ("evicted back into the queue", queued_job(True, T2, "True"), [pod()], "Queued", T0, None),
]


@pytest.mark.parametrize(
    ("case", "job_obj", "pods", "phase", "queued", "admitted"),
    QUEUE_CASES,
    ids=[c[0] for c in QUEUE_CASES],
)
def test_queueing_is_its_own_phase_and_timestamps(
    case: str, job_obj: dict, pods: list, phase: str, queued: str | None, admitted: str | None
) -> None:
    entry = trial_status(job_obj, pods)
    assert entry["phase"] == phase
    assert (entry["queued"], entry["admitted"]) == (queued, admitted)
    seen = observation(job_obj, pods, results_visible=False)
    assert (seen.queued_at, seen.admitted_at) == (queued, admitted)
