"""What a trial's Job and pods say about it: phase, outcome, reason and timestamps. Pure.

The controller records this in the Campaign's status. The outcome follows DESIGN.md: exit 137
(the podFailurePolicy's FailJob rule) is ``oom_killed``; the Job's deadline is ``timed_out``;
anything else that fails the Job is ``failed`` with the pods' own reasons (Evicted, Error,
Unschedulable...). Timestamps come from the API: created (the Job), scheduled (PodScheduled),
started (the first container start) and finished (the Job's final condition).
"""

from __future__ import annotations

from typing import Any

FINAL = ("Complete", "Failed")


def _conditions(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return (obj.get("status") or {}).get("conditions") or []


def _true(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in _conditions(obj):
        if cond.get("type") == kind and cond.get("status") == "True":
            return cond
    return None


def job_finished(job: dict[str, Any]) -> bool:
    return any(_true(job, kind) for kind in FINAL)


def _earliest(values: list[str | None]) -> str | None:
    present = [v for v in values if v]
    return min(present) if present else None


def _terminations(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            last = status.get("lastState") or {}
            for term in (state.get("terminated"), last.get("terminated")):
                if term:
                    found.append(term)
    return found


def _started(pods: list[dict[str, Any]]) -> str | None:
    """The first container start; the pod's startTime (accepted by the kubelet) only when no
    container has reported one."""
    times: list[str | None] = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            state = status.get("state") or {}
            times.append((state.get("running") or {}).get("startedAt"))
            times.append((state.get("terminated") or {}).get("startedAt"))
    return _earliest(times) or _earliest([(p.get("status") or {}).get("startTime") for p in pods])


def _scheduled(pods: list[dict[str, Any]]) -> str | None:
    return _earliest([(_true(pod, "PodScheduled") or {}).get("lastTransitionTime") for pod in pods])


def _unschedulable(pods: list[dict[str, Any]]) -> str | None:
    for pod in pods:
        for cond in _conditions(pod):
            if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
                return cond.get("message") or "Unschedulable"
    return None


def _evicted(pods: list[dict[str, Any]]) -> int:
    count = 0
    for pod in pods:
        status = pod.get("status") or {}
        disrupted = any(
            c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        if status.get("reason") == "Evicted" or disrupted:
            count += 1
    return count


def trial_status(job: dict[str, Any], pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The Campaign-status entry of one trial."""
    meta = job.get("metadata") or {}
    entry: dict[str, Any] = {
        "job": meta.get("name"),
        "created": meta.get("creationTimestamp"),
        "scheduled": _scheduled(pods),
        "started": _started(pods),
        "finished": None,
        "pods": len(pods),
        "status": None,
        "reason": "",
    }
    complete = _true(job, "Complete")
    failed = _true(job, "Failed")
    evicted = _evicted(pods)
    if complete:
        entry.update(phase="Succeeded", status="succeeded")
        entry["finished"] = (job.get("status") or {}).get("completionTime") or complete.get(
            "lastTransitionTime"
        )
    elif failed:
        entry["phase"] = "Failed"
        entry["finished"] = failed.get("lastTransitionTime")
        reason = failed.get("reason") or ""
        codes = [t.get("exitCode") for t in _terminations(pods)]
        oom = 137 in codes or any(t.get("reason") == "OOMKilled" for t in _terminations(pods))
        if oom:
            entry.update(status="oom_killed", reason="OOMKilled: a worker exited 137")
        elif reason == "DeadlineExceeded":
            unschedulable = _unschedulable(pods)
            entry.update(
                status="timed_out",
                reason="DeadlineExceeded"
                + (f" while Unschedulable: {unschedulable}" if unschedulable else ""),
            )
        else:
            details = sorted(
                {
                    f"{t.get('reason') or 'Error'} (exit {t.get('exitCode')})"
                    for t in _terminations(pods)
                }
            )
            entry.update(
                status="failed",
                reason=f"{reason}: {failed.get('message') or ''} {'; '.join(details)}".strip(),
            )
    else:
        unschedulable = _unschedulable(pods)
        if unschedulable:
            entry.update(phase="Unschedulable", reason=unschedulable)
        elif entry["started"]:
            entry["phase"] = "Running"
        elif entry["scheduled"]:
            entry["phase"] = "Scheduled"
        else:
            entry["phase"] = "Created"
    if evicted:
        entry["reason"] = (entry["reason"] + f"; {evicted} pod(s) Evicted and retried").lstrip("; ")
    return entry
