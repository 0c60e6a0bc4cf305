"""What a trial's Job and pods say about it: its phase, timestamps, and the observation the
one outcome function (:mod:`trainbed.orchestrator.outcome`) decides from. Pure.

The controller records this in the Campaign's status. Timestamps come from the API: created (the
Job), queued and admitted (a Job in a Kueue queue: created suspended, then unsuspended by Kueue),
scheduled (PodScheduled), started (the first container start) and finished (the Job's final
condition).
"""

from __future__ import annotations

from typing import Any

from trainbed.contract.env import INDEX_ANNOTATION
from trainbed.contract.kueue import QUEUE_LABEL
from trainbed.contract.records import Result
from trainbed.orchestrator.outcome import OOM_EXIT_CODE, TrialObservation

FINAL = ("Complete", "Failed")
#: The phase of a trial whose Job waits for Kueue (suspended in its queue).
QUEUED = "Queued"
#: The phase of a trial whose objects the controller is creating (no Job in the cache yet).
CREATING = "Creating"


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


def _exit_codes(pods: list[dict[str, Any]]) -> dict[int, int | None]:
    """rank (the pod's completion index) -> the exit code of its newest termination."""
    codes: dict[int, int | None] = {}
    for pod in pods:
        annotations = (pod.get("metadata") or {}).get("annotations") or {}
        index = annotations.get(INDEX_ANNOTATION)
        if index is None or not str(index).isdigit():
            continue
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            term = (status.get("state") or {}).get("terminated")
            if term and term.get("exitCode") is not None:
                codes[int(index)] = int(term["exitCode"])
    return codes


def queueing(job: dict[str, Any]) -> tuple[str | None, str | None]:
    """(queued_at, admitted_at) of a Job that Kueue manages (it carries the queue label): it
    was created suspended, so queued at its creation, and admitted when Kueue last resumed it,
    which the Job's ``status.startTime`` records (unset while suspended since its creation,
    set again at each resume). (None, None) for a Job without a queue."""
    meta = job.get("metadata") or {}
    if QUEUE_LABEL not in (meta.get("labels") or {}):
        return None, None
    admitted = None if queued(job) else (job.get("status") or {}).get("startTime")
    return meta.get("creationTimestamp"), admitted


def queued(job: dict[str, Any]) -> bool:
    """Suspended and waiting for Kueue (created so, or suspended again by an eviction): its
    ``spec.suspend``, or, where the spec is not at hand, its ``Suspended`` condition."""
    if QUEUE_LABEL not in ((job.get("metadata") or {}).get("labels") or {}):
        return False
    spec = job.get("spec")
    if isinstance(spec, dict) and "suspend" in spec:
        return bool(spec["suspend"]) and not job_finished(job)
    return bool(_true(job, "Suspended"))


def observation(
    job: dict[str, Any], pods: list[dict[str, Any]], *, results_visible: bool
) -> TrialObservation:
    """What a finished Job and its pods say, in the terms of :mod:`~trainbed.orchestrator.outcome`:
    exit 137 or OOMKilled (the podFailurePolicy's FailJob rule) is an OOM kill; the Job's
    deadline is a timeout; anything else that fails it carries the pods' own reasons."""
    complete = _true(job, "Complete")
    failed = _true(job, "Failed")
    terms = _terminations(pods)
    failure = ""
    if failed:
        details = sorted(
            {f"{t.get('reason') or 'Error'} (exit {t.get('exitCode')})" for t in terms}
        )
        said = " ".join(p for p in (failed.get("message") or "", "; ".join(details)) if p)
        failure = f"{failed.get('reason') or 'Failed'}: {said}".rstrip(": ")
    finished = None
    if complete:
        finished = (job.get("status") or {}).get("completionTime") or complete.get(
            "lastTransitionTime"
        )
    elif failed:
        finished = failed.get("lastTransitionTime")
    queued_at, admitted_at = queueing(job)
    return TrialObservation(
        queued_at=queued_at,
        admitted_at=admitted_at,
        exit_codes=_exit_codes(pods),
        oom_killed=bool(failed)
        and any(
            t.get("exitCode") == OOM_EXIT_CODE or t.get("reason") == "OOMKilled" for t in terms
        ),
        deadline_exceeded=bool(failed) and failed.get("reason") == "DeadlineExceeded",
        unschedulable=_unschedulable(pods),
        completed=True if complete else (False if failed else None),
        failure=failure,
        evicted=_evicted(pods),
        results_visible=results_visible,
        started_at=_started(pods),
        finished_at=finished,
        enforcement={"mode": "kubernetes"},
    )


def trial_status(
    job: dict[str, Any], pods: list[dict[str, Any]], result: Result | None = None
) -> dict[str, Any]:
    """The Campaign-status entry of one trial: its phase and timestamps from the API, and, once
    the Job finished, the recorded ``result``'s status and reason."""
    meta = job.get("metadata") or {}
    queued_at, admitted_at = queueing(job)
    entry: dict[str, Any] = {
        "job": meta.get("name"),
        "created": meta.get("creationTimestamp"),
        "queued": queued_at,
        "admitted": admitted_at,
        "scheduled": _scheduled(pods),
        "started": _started(pods),
        "finished": None,
        "pods": len(pods),
        "status": None,
        "reason": "",
    }
    complete = _true(job, "Complete")
    failed = _true(job, "Failed")
    if complete or failed:
        entry["phase"] = "Succeeded" if complete else "Failed"
        entry["finished"] = observation(job, pods, results_visible=False).finished_at
        if result is not None:
            entry.update(status=result.status, reason=result.reason)
            if result.admitted_beside:  # only where there was some: records stay small
                entry["beside"] = list(result.admitted_beside)
        return entry
    unschedulable = _unschedulable(pods)
    if queued(job):
        entry["phase"] = QUEUED  # its pods, if any, are leaving: Kueue took it back
    elif unschedulable:
        entry.update(phase="Unschedulable", reason=unschedulable)
    elif entry["started"]:
        entry["phase"] = "Running"
    elif entry["scheduled"]:
        entry["phase"] = "Scheduled"
    else:
        entry["phase"] = "Created"
    return entry
