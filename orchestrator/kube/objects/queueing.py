"""Why Kueue holds a trial, named from its Workload's conditions. Pure.

A trial with a queue waits, suspended, until Kueue admits all its ranks at once. Most waits
pass by themselves (the quota is in use: ``QuotaExhausted``; Kueue has not reached it yet:
``Pending``); the Campaign's ``Queued`` condition names them. Two never do and also become
what blocks the campaign: the LocalQueue (or its ClusterQueue) does not exist
(``QueueMissing``), or Kueue found the Workload inadmissible for another reason
(``Inadmissible``). An evicted Workload (preempted, its pods not ready in time) waits again:
``Evicted``, with Kueue's reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trainbed.contract.kueue import ADMITTED, EVICTED, QUOTA_RESERVED
from trainbed.orchestrator.kube.objects.campaign_status import Blocker, Condition

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
