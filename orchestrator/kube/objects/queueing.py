"""Why Kueue holds a trial, named from its Workload's conditions. Pure.

A trial with a queue waits, suspended, until Kueue admits all its ranks at once. Most waits
pass by themselves (the quota is in use: ``QuotaExhausted``; Kueue has not reached it yet:
``Pending``); the Campaign's ``Queued`` condition names them. Two never do and also become
what blocks the campaign: the LocalQueue (or its ClusterQueue) does not exist
(``QueueMissing``), or Kueue found the Workload inadmissible for another reason
(``Inadmissible``). An evicted Workload (preempted, its pods not ready in time) waits again:
``Evicted``, with Kueue's reason.

:func:`admission_span` and :func:`admitted_beside` say which other work Kueue admitted while a
trial ran: a timing confounder the Noise section names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from trainbed.contract.kueue import ADMITTED, EVICTED, FINISHED, QUOTA_RESERVED
from trainbed.orchestrator.kube.objects.campaign_status import Blocker, Condition

#: When a Workload was last admitted, and when that admission ended (None: it still holds).
Span = tuple[str, str | None]

#: Queue reasons that do not pass by themselves: they also become the Blocked condition.
BLOCKING = ("QueueMissing", "Inadmissible")


def _conditions(workload: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (workload.get("status") or {}).get("conditions") or []
    return {c.get("type"): c for c in found}


def queue_reason(workload: Mapping[str, Any] | None) -> Blocker:
    """Why this Workload is not (or no longer) admitted, in Kueue's own words."""
    if workload is None:
        return Blocker("Pending", "Kueue has made no Workload for the Job yet")
    conds = _conditions(workload)
    evicted = conds.get(EVICTED)
    if evicted and evicted.get("status") == "True":
        reason = evicted.get("reason") or "Evicted"
        return Blocker("Evicted", f"{reason}: {evicted.get('message') or ''}".rstrip(": "))
    reserved = conds.get(QUOTA_RESERVED)
    admitted = conds.get(ADMITTED)
    if admitted and admitted.get("status") == "True":
        return Blocker("Admitted", "admitted; its pods are starting")
    if reserved is None or reserved.get("status") != "False":
        return Blocker("Pending", "Kueue has not reserved quota for it yet")
    message = reserved.get("message") or ""
    if reserved.get("reason") == "Inadmissible":
        missing = "doesn't exist" in message or "does not exist" in message
        return Blocker("QueueMissing" if missing else "Inadmissible", message)
    if "quota" in message:
        return Blocker("QuotaExhausted", message)
    return Blocker("Pending", message or reserved.get("reason") or "waiting")


def queued_condition(reasons: Iterable[tuple[str, Blocker]]) -> Condition:
    """``Queued``: True while Kueue holds any trial, with the reason that holds the most
    (ties: the one that does not pass by itself first), naming how many and one of them."""
    found = sorted(reasons, key=lambda item: item[0])
    if not found:
        return Condition("Queued", "False", "NothingQueued", "")
    by_reason: dict[str, list[tuple[str, Blocker]]] = {}
    for trial, blocker in found:
        by_reason.setdefault(blocker.reason, []).append((trial, blocker))
    reason = max(by_reason, key=lambda r: (r in BLOCKING, len(by_reason[r])))
    trial, first = by_reason[reason][0]
    count = len(by_reason[reason])
    who = f"{count} trials, e.g. {trial}" if count > 1 else trial
    return Condition("Queued", "True", reason, f"{who}: {first.message}"[:1000])


def admission_span(workload: Mapping[str, Any], before: Span | None = None) -> Span | None:
    """The Workload's latest admission, from its conditions' transition times: since its
    ``Admitted`` condition turned True, until it finished or lost admission (evicted). The span
    ``before`` (what an earlier version showed) is kept where the conditions no longer say
    when it began. None where it was never seen admitted."""
    conds = _conditions(workload)
    admitted, finished = conds.get(ADMITTED), conds.get(FINISHED)
    start, end = before if before is not None else (None, None)
    if admitted is not None and admitted.get("status") == "True":
        start, end = admitted.get("lastTransitionTime") or start, None
    elif admitted is not None and start is not None and end is None:
        end = admitted.get("lastTransitionTime") or end
    if start is not None and finished is not None and finished.get("status") == "True":
        end = finished.get("lastTransitionTime") or end
    return None if start is None else (start, end)


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def admitted_beside(spans: Mapping[str, Span], since: str, until: str | None) -> list[str]:
    """The names of ``spans`` (other Workloads' admissions) that overlap a trial's run from
    ``since`` to ``until`` (None: still running), sorted. The API server's stamps are whole
    seconds, so spans that touch within the same second count as overlapping."""
    begin = _when(since).replace(microsecond=0)
    end = _when(until) if until else None
    found = []
    for name, (start, stop) in spans.items():
        if (end is None or _when(start) <= end) and (stop is None or _when(stop) >= begin):
            found.append(name)
    return sorted(found)
