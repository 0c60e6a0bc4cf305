"""What a Job and its pods say about a trial, table-driven over API-shaped dicts."""

from __future__ import annotations

from typing import Any

import pytest

from trainbed.orchestrator.kube.status import job_finished, trial_status

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
    ("running", job(), [pod()], "Running", None, ""),
    (
        "complete",
        job(("Complete", ""), completion=T3),
        [pod("Succeeded", exit_code=0)],
        "Succeeded",
        "succeeded",
        "",
    ),
    (
        "oom via podFailurePolicy",
        job(("Failed", "PodFailurePolicy")),
        [pod("Failed", exit_code=137, reason="OOMKilled")],
        "Failed",
        "oom_killed",
        "OOMKilled",
    ),
    (
        "deadline",
        job(("Failed", "DeadlineExceeded")),
        [pod()],
        "Failed",
        "timed_out",
        "DeadlineExceeded",
    ),
    (
        "deadline while unschedulable",
        job(("Failed", "DeadlineExceeded")),
        [pod("Pending", unschedulable=True)],
        "Failed",
        "timed_out",
        "Unschedulable",
    ),
    (
        "unschedulable, still waiting",
        job(),
        [pod("Pending", unschedulable=True)],
        "Unschedulable",
        None,
        "insufficient cpu",
    ),
    (
        "crash",
        job(("Failed", "BackoffLimitExceeded")),
        [pod("Failed", exit_code=1, reason="Error")],
        "Failed",
        "failed",
        "Error (exit 1)",
    ),
    (
        "evicted and retried",
        job(("Complete", ""), completion=T3),
        [pod("Failed", evicted=True), pod("Succeeded", exit_code=0)],
        "Succeeded",
        "succeeded",
        "Evicted",
    ),
]


@pytest.mark.parametrize(
    ("case", "job_obj", "pods", "phase", "status", "reason"), CASES, ids=[c[0] for c in CASES]
)
def test_trial_status(
    case: str, job_obj: dict, pods: list, phase: str, status: str | None, reason: str
) -> None:
    entry = trial_status(job_obj, pods)
    assert entry["phase"] == phase
    assert entry["status"] == status
    assert reason in entry["reason"]
    assert entry["created"] == T0
    if status is not None:
        assert job_finished(job_obj) and entry["finished"] == T3
    if phase in ("Running", "Succeeded"):
        assert entry["scheduled"] == T1 and entry["started"] == T2
