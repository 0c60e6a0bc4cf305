"""The Campaign's status as a frozen value of bounded size, the way kopf keeps handler state.

:class:`CampaignStatus` holds what ``kubectl get campaigns`` and ``trainbed status`` show: the
phase, the counts, the campaign's own timestamps, its conditions, and two bounded windows, the
trials in flight (at most :data:`IN_FLIGHT`, oldest first) and the latest failures (at most
:data:`FAILURES`). Per-trial records live in the records ConfigMaps
(:mod:`~trainbed.orchestrator.kube.control.record_store`), so the object stays a few KiB at any
campaign size.

:meth:`CampaignStatus.from_storage` reads the stored dict and :meth:`CampaignStatus.for_storage`
writes it; the controller compares values and sends a merge patch only when the value changed.
Windows are lists, which a merge patch replaces whole, so nothing stale is left behind. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

#: The trials in flight the status lists (the rest are counted): the oldest ones, where a stuck
#: trial shows first.
IN_FLIGHT = 50
#: The latest failures the status lists; every one is in the records.
FAILURES = 50
#: A window entry's reason is cut to this length (the record keeps more).
REASON_CHARS = 200

FINAL_PHASES = ("Completed", "Invalid")


def _cut(text: str, limit: int = REASON_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class Condition:
    """A Kubernetes-style condition; ``since`` is its lastTransitionTime."""

    type: str
    status: str
    reason: str = ""
    message: str = ""
    since: str = ""

    @classmethod
    def from_storage(cls, data: Mapping[str, Any]) -> Condition:
        return cls(
            type=str(data.get("type", "")),
            status=str(data.get("status", "Unknown")),
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
            since=str(data.get("lastTransitionTime") or ""),
        )

    def for_storage(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "status": self.status,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.since,
        }


@dataclass(frozen=True)
class InFlight:
    """A trial that was started and is not recorded yet."""

    trial: str
    phase: str
    since: str = ""
    reason: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", _cut(self.reason))  # stored == held

    @classmethod
    def from_storage(cls, data: Mapping[str, Any]) -> InFlight:
        return cls(
            str(data["trial"]),
            str(data.get("phase", "")),
            str(data.get("since") or ""),
            str(data.get("reason") or ""),
        )

    def for_storage(self) -> dict[str, Any]:
        out = {"trial": self.trial, "phase": self.phase, "since": self.since}
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class Failure:
    """A recorded trial whose status is not ``succeeded``."""

    trial: str
    status: str
    reason: str = ""
    finished: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", _cut(self.reason))  # stored == held

    @classmethod
    def from_storage(cls, data: Mapping[str, Any]) -> Failure:
        return cls(
            str(data["trial"]),
            str(data.get("status", "")),
            str(data.get("reason") or ""),
            str(data.get("finished") or ""),
        )

    def for_storage(self) -> dict[str, Any]:
        return {
            "trial": self.trial,
            "status": self.status,
            "reason": self.reason,
            "finished": self.finished,
        }


@dataclass(frozen=True)
class Blocker:
    """Why trials cannot progress: a short reason (``ImagePullBackOff``) and what to do."""

    reason: str
    message: str


@dataclass(frozen=True)
class CampaignStatus:
    phase: str = "Pending"
    observed_generation: int | None = None
    total: int = 0
    done: int = 0
    failed: int = 0
    #: in flight and admitted (every trial without a queue; with one, those Kueue let go)
    running: int = 0
    #: in flight but waiting in a Kueue queue (suspended, not yet admitted, or evicted)
    queued: int = 0
    #: in-flight trials by their phase (Creating, Created, Scheduled, Running, Unschedulable, ...)
    phases: tuple[tuple[str, int], ...] = ()
    started_at: str = ""
    completed_at: str = ""
    #: the last time the controller looked at this campaign (a stale one means no controller)
    heartbeat: str = ""
    in_flight: tuple[InFlight, ...] = ()
    failures: tuple[Failure, ...] = ()
    conditions: tuple[Condition, ...] = ()
    #: ``kubectl get configmaps -l <records>`` lists the per-trial records
    records: str = ""

    @property
    def succeeded(self) -> int:
        return self.done - self.failed

    @property
    def pending(self) -> int:
        return max(0, self.total - self.done - self.running - self.queued)

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)

    @property
    def blocked(self) -> Condition | None:
        """The Blocked condition when it is True."""
        cond = self.condition("Blocked")
        return cond if cond is not None and cond.status == "True" else None

    @classmethod
    def from_storage(cls, data: Mapping[str, Any] | None) -> CampaignStatus:
        data = data or {}
        generation = data.get("observedGeneration")
        return cls(
            phase=str(data.get("phase") or "Pending"),
            observed_generation=int(generation) if generation is not None else None,
            total=int(data.get("total") or 0),
            done=int(data.get("done") or 0),
            failed=int(data.get("failed") or 0),
            running=int(data.get("running") or 0),
            queued=int(data.get("queued") or 0),
            phases=tuple(sorted((str(k), int(v)) for k, v in (data.get("phases") or {}).items())),
            started_at=str(data.get("startedAt") or ""),
            completed_at=str(data.get("completedAt") or ""),
            heartbeat=str(data.get("heartbeat") or ""),
            in_flight=tuple(InFlight.from_storage(e) for e in data.get("inFlight") or []),
            failures=tuple(Failure.from_storage(e) for e in data.get("failures") or []),
            conditions=tuple(Condition.from_storage(c) for c in data.get("conditions") or []),
            records=str(data.get("records") or ""),
        )

    def for_storage(self) -> dict[str, Any]:
        """The stored form."""
        blocked = self.blocked
        return {
            "phase": self.phase,
            "observedGeneration": self.observed_generation,
            "total": self.total,
            "done": self.done,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "running": self.running,
            "queued": self.queued,
            "pending": self.pending,
            "phases": dict(self.phases),
            "startedAt": self.started_at or None,
            "completedAt": self.completed_at or None,
            "heartbeat": self.heartbeat or None,
            "inFlight": [e.for_storage() for e in self.in_flight],
            "failures": [f.for_storage() for f in self.failures],
            "conditions": [c.for_storage() for c in self.conditions],
            "records": self.records or None,
            "blocked": blocked.reason if blocked else None,
        }


def window(entries: Iterable[InFlight], limit: int = IN_FLIGHT) -> tuple[InFlight, ...]:
    """The oldest ``limit`` in-flight trials (where a stuck one shows first)."""
    return tuple(sorted(entries, key=lambda e: (e.since or "~", e.trial))[:limit])


def with_conditions(
    previous: tuple[Condition, ...], wanted: Iterable[Condition], now: str
) -> tuple[Condition, ...]:
    """``wanted`` with each lastTransitionTime kept from ``previous`` while its status holds."""
    before = {c.type: c for c in previous}
    out = []
    for cond in wanted:
        old = before.get(cond.type)
        since = old.since if old is not None and old.status == cond.status and old.since else now
        out.append(replace(cond, since=since))
    return tuple(out)


def progress_conditions(
    *, done: int, total: int, failed: int, blockers: Iterable[Blocker]
) -> list[Condition]:
    """``Complete`` and ``Blocked``: whether every trial is recorded, and what stops the rest."""
    complete = done >= total
    found = list(blockers)
    conditions = [
        Condition(
            "Complete",
            "True" if complete else "False",
            "AllTrialsRecorded" if complete else "TrialsInProgress",
            f"{done}/{total} trials recorded, {failed} not succeeded",
        )
    ]
    if found and not complete:
        conditions.append(
            Condition(
                "Blocked",
                "True",
                found[0].reason,
                "; ".join(f"{b.reason}: {b.message}" for b in found)[:1000],
            )
        )
    else:
        conditions.append(Condition("Blocked", "False", "NothingBlocks", ""))
    return conditions


#: The reason a ``Stalled`` condition gives for the HTTP status of the error it reports.
STALLED_REASONS = {401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 422: "Invalid"}


def with_stalled(
    conditions: tuple[Condition, ...], status: int | None, message: str, now: str
) -> tuple[Condition, ...]:
    """``conditions`` plus ``Stalled`` (kstatus's name for "a person must act"): the controller
    stopped on a permanent API error, which ``message`` names. Any older ``Stalled`` is replaced;
    the next status the controller writes after a restart leaves it out."""
    stalled = Condition(
        "Stalled", "True", STALLED_REASONS.get(status or 0, "ApiError"), _cut(message, 1000), now
    )
    return (*(c for c in conditions if c.type != "Stalled"), stalled)
