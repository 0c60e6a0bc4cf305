"""One campaign as the controller holds it: its driver, executor and record store, the status
last written and the status now. :meth:`CampaignRuntime.status` computes the Campaign's bounded
status from the executor's state, a function of it and of the previous value's timestamps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.orchestrator.driver import Driver
from trainbed.orchestrator.kube.control.executor import KubernetesExecutor
from trainbed.orchestrator.kube.control.record_store import RecordStore, records_selector
from trainbed.orchestrator.kube.objects.blockers import summarize
from trainbed.orchestrator.kube.objects.campaign_status import (
    CampaignStatus,
    progress_conditions,
    window,
    with_conditions,
)
from trainbed.orchestrator.kube.objects.queueing import queued_condition
from trainbed.orchestrator.kube.objects.trial_status import CREATING, QUEUED

#: A live campaign's status says the controller looked at it at most this long ago.
HEARTBEAT_S = 30.0


def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(stamp: str) -> float:
    if not stamp:
        return float("inf")
    return time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class CampaignRuntime:
    generation: int
    campaign: Campaign
    driver: Driver
    executor: KubernetesExecutor
    store: RecordStore
    total: int
    #: the status last written (what the API holds)
    written: CampaignStatus
    #: the status last computed (what ``run`` shows, written or not)
    view: CampaignStatus
    last_sync: float = 0.0
    last_pvc_check: float = float("-inf")
    pvc: Any = None

    def status(self, done: bool) -> CampaignStatus:
        """The campaign's status now, from the executor's state: a pure function of it,
        plus the previous value's timestamps."""
        executor = self.executor
        previous = self.written
        stamp = now_stamp()
        flight = executor.in_flight()
        found = executor.blockers(time.time())
        if self.pvc is not None:
            found.insert(0, ("", self.pvc))
        # a Job being created with a queue is created suspended: it enters the queue
        waiting = (QUEUED, CREATING) if self.campaign.spec.kubernetes.queue else (QUEUED,)
        queued = sum(1 for entry in flight if entry.phase in waiting)
        running = len(flight) - queued
        started = previous.started_at or (stamp if flight or executor.done else "")
        complete = executor.done >= self.total
        heartbeat = previous.heartbeat
        if not complete and _age(heartbeat) >= HEARTBEAT_S:
            heartbeat = stamp
        wanted = progress_conditions(
            done=executor.done,
            total=self.total,
            failed=executor.failed,
            blockers=summarize(found),
        )
        if self.campaign.spec.kubernetes.queue:
            wanted.append(queued_condition(executor.queue_reasons()))
        phase = "Running" if flight or executor.done else "Pending"
        return CampaignStatus(
            phase="Completed" if complete else phase,
            observed_generation=self.generation,
            total=self.total,
            done=executor.done,
            failed=executor.failed,
            running=running,
            queued=queued,
            phases=tuple(sorted(executor.phase_counts(flight).items())),
            started_at=started,
            completed_at=previous.completed_at or (stamp if complete else ""),
            heartbeat=heartbeat,
            in_flight=window(flight),
            failures=tuple(executor.failures),
            conditions=with_conditions(previous.conditions, wanted, stamp),
            records=records_selector(self.campaign.name),
        )
