"""A finished trial's recorded outcome, decided once for both backends. Pure.

Each executor builds a :class:`TrialObservation` from what it saw (the local executor from its
processes and cgroups, the Kubernetes executor from the Job and its pods), and
:func:`outcome` turns it, with the worker's own ``result.json`` where there is one, into the
:class:`~trainbed.contract.records.Result` that is recorded. The executor knows things the
worker cannot: that the kernel or the kubelet OOM-killed a rank, that the trial was stopped for
time, that rank 0 died before it could write anything.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from trainbed.contract.records import Result
from trainbed.contract.trial import TrialSpec

#: The exit code of a process killed by SIGKILL, as the kernel's OOM killer does.
OOM_EXIT_CODE = 137


@dataclass(frozen=True, kw_only=True)
class TrialObservation:
    """What an executor saw of a finished trial, in the backend's own terms."""

    #: rank -> exit code (negative: killed by that signal, locally); None when unknown
    exit_codes: Mapping[int, int | None] = field(default_factory=dict)
    #: the kernel (local cgroup OOM counter) or the kubelet (OOMKilled, exit 137) killed a rank
    oom_killed: bool = False
    #: the local fallback watchdog saw resident memory pass the limit
    memory_exceeded: bool = False
    #: (status, reason) of a stop the driver asked for, e.g. its timeout
    stopped: tuple[str, str] | None = None
    #: the backend's own deadline ended the trial (the Job's activeDeadlineSeconds)
    deadline_exceeded: bool = False
    #: why pods could not be scheduled, when they could not
    unschedulable: str | None = None
    #: the backend's verdict that every rank completed (a Complete Job); None when it has none
    completed: bool | None = None
    #: what the backend said about a failure (the Job's condition, the pods' reasons)
    failure: str = ""
    #: pods that were evicted or disrupted (and retried)
    evicted: int = 0
    #: whether the worker's result.json could be read at all (False: the controller runs
    #: without the results volume, so a missing result means nothing)
    results_visible: bool = True
    started_at: str | None = None
    finished_at: str | None = None
    #: Kueue's queueing of the trial's Job: created suspended, last admitted (None: no queue)
    queued_at: str | None = None
    admitted_at: str | None = None
    #: Kueue's reason for each eviction (preemption) the trial waited through, oldest first
    preemptions: tuple[str, ...] = ()
    #: other Workloads Kueue admitted in the namespace while the trial ran
    admitted_beside: tuple[str, ...] = ()
    #: process start, seconds since the epoch, when the executor measured it itself
    started: float | None = None
    enforcement: Mapping[str, Any] = field(default_factory=dict)
    #: rank -> the end of its log
    log_tails: Mapping[int, str] = field(default_factory=dict)
    #: rank -> when its exit was seen (seconds since the epoch), where the backend knows
    exit_times: Mapping[int, float] = field(default_factory=dict)
    #: extra fields recorded as they are (e.g. the attempt an interrupted run set aside)
    extra: Mapping[str, Any] = field(default_factory=dict)


def describe_exit(code: int | None) -> str:
    """'with code 1', 'on SIGKILL', 'never'."""
    if code is None:
        return "never"
    if code < 0:
        try:
            return f"on {signal.Signals(-code).name}"
        except ValueError:
            return f"on signal {-code}"
    return f"with code {code}"


#: A Python exception's last line: ``RuntimeError: CUDA error: ...``,
#: ``torch.distributed.DistBackendError: ...``, ``KeyboardInterrupt``.
_ERROR_LINE = re.compile(
    r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt|Failure|Fault)\w*(: .*)?$"
)


def last_error_line(log: str) -> str:
    """A log's last exception line (type and message), else its last line; "" when empty."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    for line in reversed(lines):
        if _ERROR_LINE.match(line):
            return line[:300]
    return lines[-1][:300] if lines else ""


def first_failure(seen: TrialObservation) -> int | None:
    """The rank that failed first: by the time its exit was seen; among ranks seen at the same
    time (or with no time), one that exited with a code of its own before one that was killed
    by a signal (often the executor's, after a peer died), then the lowest rank."""
    failed = [r for r, c in seen.exit_codes.items() if c not in (0, None)]
    if not failed:
        return None

    def order(rank: int) -> tuple[float, int, int]:
        code = seen.exit_codes[rank] or 0
        return (seen.exit_times.get(rank, float("inf")), 1 if code < 0 else 0, rank)

    return min(failed, key=order)


def failure_cause(seen: TrialObservation) -> str:
    """``rank 1: RuntimeError: CUDA error: invalid device ordinal``: the first failed rank and
    its own last error line (never another rank's); "" when no rank failed or its log is
    empty (the exit codes then say what is known)."""
    rank = first_failure(seen)
    line = "" if rank is None else last_error_line(seen.log_tails.get(rank, ""))
    return f"rank {rank}: {line}" if line else ""


def _verdict(worker: Result | None, seen: TrialObservation) -> tuple[str | None, str]:
    """The status the executor imposes (None: the worker's stands) and its reason."""
    failed = {r: c for r, c in seen.exit_codes.items() if c not in (0, None)}
    codes = ", ".join(f"rank {r} exited {describe_exit(c)}" for r, c in sorted(failed.items()))
    if seen.oom_killed:
        return "oom_killed", "a rank exceeded its memory limit and was OOM-killed" + (
            f" ({codes})" if codes else ""
        )
    if seen.memory_exceeded:
        return "failed", "memory limit exceeded: resident memory passed the limit (watchdog)"
    if seen.stopped is not None:
        return seen.stopped
    if seen.deadline_exceeded:
        why = f" while Unschedulable: {seen.unschedulable}" if seen.unschedulable else ""
        return "timed_out", f"DeadlineExceeded{why}"
    if worker is None:
        if seen.completed:  # the backend's own verdict: every rank exited 0
            missing = "the Job completed, but rank 0 left no result.json on the results volume"
            return "succeeded", missing if seen.results_visible else ""
        if not seen.results_visible and not failed and not seen.failure:
            return "failed", "the trial failed"
        reason = "; ".join(p for p in (failure_cause(seen), seen.failure, codes) if p)
        return "failed", reason or "the workers exited without writing a result"
    if worker.status == "succeeded" and (failed or seen.completed is False):
        reason = "; ".join(p for p in (failure_cause(seen), codes) if p)
        return "failed", reason or seen.failure or "the backend says a rank failed"
    if worker.status == "failed" and first_failure(seen) not in (None, 0) and failure_cause(seen):
        # rank 0 wrote the result, but another rank failed first: its error is the cause
        return "failed", f"{failure_cause(seen)}; rank 0: {worker.reason}"
    return None, ""


def outcome(spec: TrialSpec, worker: Result | None, seen: TrialObservation) -> Result:
    """The recorded result of a finished trial: the worker's, corrected by what the executor
    saw. Metrics come only from the worker; nothing is invented where it wrote none."""
    status, reason = _verdict(worker, seen)
    base = worker or Result(status="failed")
    # the executor's word on how limits were enforced wins; what the worker read back from its
    # own cgroup (a pod's, where the executor could not look) stays beside it
    update: dict[str, Any] = {"enforcement": {**base.enforcement, **seen.enforcement}}
    if status is not None:
        update["status"] = status
        update["reason"] = (
            f"{reason} (worker said: {worker.status}: {worker.reason})"
            if worker is not None and worker.reason and status != worker.status
            else reason
        )
    if seen.evicted:
        note = f"{seen.evicted} pod(s) evicted and retried"
        update["reason"] = "; ".join(p for p in (update.get("reason", base.reason), note) if p)
    if seen.preemptions:
        times = len(seen.preemptions)
        note = f"preempted by Kueue {times}x and run again (last: {seen.preemptions[-1]})"
        update["reason"] = "; ".join(p for p in (update.get("reason", base.reason), note) if p)
        update["preemptions"] = list(seen.preemptions)
    if seen.admitted_beside:
        update["admitted_beside"] = list(seen.admitted_beside)
    update["campaign"] = base.campaign or spec.campaign
    update["trial_id"] = base.trial_id or spec.trial_id
    update["world_size"] = base.world_size or spec.workload.parallelism
    update["started_at"] = base.started_at or seen.started_at
    update["finished_at"] = base.finished_at or seen.finished_at
    update["queued_at"] = base.queued_at or seen.queued_at
    update["admitted_at"] = base.admitted_at or seen.admitted_at
    if base.wall_time_s is None:
        update["wall_time_s"] = _seconds_between(
            seen.started, update["started_at"], update["finished_at"]
        )
    if seen.exit_codes:
        update["exit_codes"] = {str(r): c for r, c in seen.exit_codes.items()}
    update.update(seen.extra)
    return base.model_copy(update=update)


def _seconds_between(start: float | None, started_at: str | None, finished_at: str | None):
    """Wall seconds from the start (measured, or the timestamp) to the finish, or None."""
    if finished_at is None:
        return None
    end = _timestamp(finished_at)
    begin = start if start is not None else (_timestamp(started_at) if started_at else None)
    return None if begin is None else max(0.0, end - begin)


def _timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
