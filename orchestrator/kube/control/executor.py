"""The Kubernetes executor: each trial is an Indexed Job + headless Service + ConfigMap.

It implements the driver's Executor protocol over informer caches (watches, never polling), so
the controller runs the very same :class:`~trainbed.orchestrator.driver.Driver` as the local
backend. Creation and cleanup are idempotent under deterministic names and run on a small thread
pool, so a slow API round-trip never leaves allowed concurrency idle nor stalls the loop.

State is rebuilt after a restart from what the cluster holds: a trial with a record in the
campaign's records ConfigMaps (:mod:`~trainbed.orchestrator.kube.control.record_store`) is
recorded, a trial with a Job is running or finished, anything else is pending. A finished trial's
objects are deleted (``cleanup: delete``) only once its record is durable (:meth:`flushed`), so a
controller killed in between finds the Job again and records the trial, once.

Work per pass is proportional to what changed, not to the campaign: the caches index objects by
campaign and trial and hand each executor the trials that changed since its last pass, and the
observations the driver reads are kept between passes. The caches are
:mod:`~trainbed.orchestrator.kube.control.caches`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import ClusterError
from trainbed.contract.records import Result, amend_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.driver import Observation, Phase
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.adapter.informer import Obj
from trainbed.orchestrator.kube.control.caches import ClusterCaches
from trainbed.orchestrator.kube.objects.blockers import job_blocker, pod_blocker
from trainbed.orchestrator.kube.objects.campaign_status import FAILURES, Blocker, Failure, InFlight
from trainbed.orchestrator.kube.objects.manifests import (
    trial_configmap,
    trial_job,
    trial_service,
)
from trainbed.orchestrator.kube.objects.metadata import job_name
from trainbed.orchestrator.kube.objects.queueing import BLOCKING, admitted_beside, queue_reason
from trainbed.orchestrator.kube.objects.trial_status import (
    CREATING,
    QUEUED,
    job_finished,
    observation,
    trial_status,
)
from trainbed.orchestrator.outcome import TrialObservation, outcome
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class KubernetesExecutor:
    """One campaign's trials as Jobs; recorded outcomes go to the records ConfigMaps."""

    def __init__(
        self,
        campaign: Campaign,
        api: KubeApi,
        caches: ClusterCaches,
        *,
        namespace: str,
        trials: list[TrialSpec],
        owner: dict[str, Any] | None = None,
        recorded: dict[str, dict[str, Any]] | None = None,
        create_workers: int = 16,
        results: ResultsDir | None = None,
    ) -> None:
        self.campaign = campaign
        self.name = campaign.name
        self.api = api
        self.caches = caches
        self.namespace = namespace
        self.owner = owner
        self.specs = {trial.trial_id: trial for trial in trials}
        #: Where this campaign's results directory is (the PVC in the cluster), if mounted here.
        self.results = results
        self.cleanup = campaign.spec.kubernetes.cleanup == "delete"
        #: trial_id -> record with a final ``status`` (loaded from the records on start)
        self.recorded: dict[str, dict[str, Any]] = {
            tid: entry for tid, entry in (recorded or {}).items() if entry.get("status")
        }
        #: what the driver reads: kept between passes, changed only where something changed
        self.observed: dict[str, Observation] = {
            tid: Observation(Phase.RECORDED, status=entry["status"])
            for tid, entry in self.recorded.items()
        }
        mine = [e for t, e in self.recorded.items() if t in self.specs]
        self.done = len(mine)
        self.failed = sum(1 for e in mine if e["status"] != "succeeded")
        latest = sorted(
            (e.get("finished") or "", t, e)
            for t, e in self.recorded.items()
            if t in self.specs and e["status"] != "succeeded"
        )[-FAILURES:]
        self.failures: deque[Failure] = deque(
            (Failure(t, e["status"], e.get("reason") or "", f) for f, t, e in latest),
            maxlen=FAILURES,
        )
        #: trial_id -> status entry of a started, unrecorded trial (from its Job and pods)
        self.live: dict[str, dict[str, Any]] = {}
        #: Recorded here but not yet durable in the records (the controller batches them).
        self.unflushed: dict[str, dict[str, Any]] = {}
        #: trial_id -> what the API showed when it was recorded here (``run`` settles the
        #: collected results with it, where the results volume was out of sight)
        self.seen: dict[str, TrialObservation] = {}
        #: trial_id -> why creating its objects failed (the last attempt)
        self.create_errors: dict[str, str] = {}
        #: A permanent API error met creating or deleting a trial's objects (403 on jobs, say):
        #: the controller stops on it instead of retrying forever.
        self.fatal: ClusterError | None = None
        self._creating: dict[str, float] = {}
        self._create_failed: set[str] = set()
        self._cleaning: set[str] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=create_workers, thread_name_prefix="create")
        #: each creating thread's second request (its own pool: waiting on the first would
        #: deadlock a full one)
        self._beside = ThreadPoolExecutor(max_workers=create_workers, thread_name_prefix="beside")
        self._seen = caches.changes.count
        #: trial_id -> Kueue's reason for each time it evicted the trial (its Job suspended
        #: again); the trial then waits and runs again in the same Job, not as a failure
        self.preemptions: dict[str, list[str]] = {}
        self._evicted: set[str] = set()
        #: Kueue's Workloads, read where the campaign queues its trials (None: no queue)
        self.workloads = caches.watch_workloads() if campaign.spec.kubernetes.queue else None
        caches.mark_all(self.name)

    # --- what exists ---------------------------------------------------------------------

    def observe(self) -> dict[str, Observation]:
        for trial_id in self.caches.drain(self.name):
            self._refresh(trial_id)
        with self._lock:
            failed, self._create_failed = self._create_failed, set()
            creating = list(self._creating.items())
        for trial_id in failed:
            if trial_id not in self.live and trial_id not in self.recorded:
                self.observed.pop(trial_id, None)
        for trial_id, since in creating:
            if trial_id in self.live:
                with self._lock:
                    self._creating.pop(trial_id, None)  # the watch cache has its Job now
            elif trial_id not in self.observed:
                self.observed[trial_id] = Observation(Phase.RUNNING, started=since)
        return self.observed

    def _refresh(self, trial_id: str) -> None:
        job, pods = self.caches.trial(self.name, trial_id)
        if trial_id in self.recorded:
            if self.cleanup and job is not None and trial_id not in self.unflushed:
                self._clean(trial_id)  # left behind by a controller that stopped in between
            return
        if job is None or trial_id not in self.specs:
            self.live.pop(trial_id, None)
            with self._lock:
                creating = trial_id in self._creating
            if not creating:
                self.observed.pop(trial_id, None)
            return
        entry = trial_status(job, pods)
        if entry["phase"] == QUEUED:
            held = queue_reason(self.caches.workload(job_name(self.name, trial_id)))
            entry["reason"] = f"{held.reason}: {held.message}"
            entry["held"] = held
            if held.reason == "Evicted" and trial_id not in self._evicted:
                self._evicted.add(trial_id)  # one eviction, however many passes see it
                self.preemptions.setdefault(trial_id, []).append(held.message)
        else:
            self._evicted.discard(trial_id)
        self.live[trial_id] = entry
        created = _ts(job["metadata"].get("creationTimestamp"))
        phase = Phase.FINISHED if job_finished(job) else Phase.RUNNING
        self.observed[trial_id] = Observation(phase, started=created)

    # --- actions -------------------------------------------------------------------------

    def start(self, trial: TrialSpec) -> None:
        with self._lock:
            if trial.trial_id in self._creating:
                return
            self._creating[trial.trial_id] = time.time()
        self._pool.submit(self._create, trial)

    def _create(self, trial: TrialSpec) -> None:
        try:
            ns = self.namespace
            # the ConfigMap and the Service side by side, then the Job, which must come last:
            # a restarted controller takes a trial with a Job for one whose objects all exist
            service = self._beside.submit(
                self.api.create,
                trial_service(self.campaign, trial, namespace=ns, owner=self.owner),
            )
            self.api.create(trial_configmap(self.campaign, trial, namespace=ns, owner=self.owner))
            service.result()
            self.api.create(trial_job(self.campaign, trial, namespace=ns, owner=self.owner))
            self.create_errors.pop(trial.trial_id, None)
        except Exception as err:  # noqa: BLE001 - reported in status, retried by the driver
            self.create_errors[trial.trial_id] = str(err)
            if isinstance(err, ClusterError) and err.permanent:
                self.fatal = err  # no retry fixes it: the controller stops on it and says why
            else:
                log.warning("creating trial %s failed: %s", trial.trial_id, err)
            with self._lock:
                self._creating.pop(trial.trial_id, None)
                self._create_failed.add(trial.trial_id)
            self.caches.changes.bump()

    def _admitted_beside(self, since: str | None, until: str | None) -> list[str]:
        """Other Workloads Kueue admitted in the namespace while a trial ran from ``since``
        (its admission) to ``until``: not this campaign's trials (other campaigns' are)."""
        if self.workloads is None or not since:
            return []
        own = {job_name(self.name, trial_id) for trial_id in self.specs}
        spans = {n: span for n, (job, span) in self.caches.admissions().items() if job not in own}
        return admitted_beside(spans, since, until)

    def stop(self, trial_id: str, status: str, reason: str) -> None:
        # In the cluster the Job's activeDeadlineSeconds bounds every trial; the driver runs
        # without its own timeout here, so a stop comes only from an explicit request.
        self.api.delete("Job", self.namespace, job_name(self.name, trial_id))

    def record(self, trial_id: str) -> Result:
        if trial_id in self.recorded:
            return _result(self.recorded[trial_id])
        job, pods = self.caches.trial(self.name, trial_id)
        assert job is not None and job_finished(job), f"{trial_id}: recorded once it finished"
        seen = observation(job, pods, results_visible=self.results is not None)
        seen = replace(
            seen,
            preemptions=tuple(self.preemptions.pop(trial_id, ())),
            admitted_beside=tuple(self._admitted_beside(seen.admitted_at, seen.finished_at)),
        )
        spec = self.specs[trial_id]
        if self.results is None:
            self.seen[trial_id] = seen
            result = outcome(spec, None, seen)
        else:
            # as the local executor does: the worker's record, corrected by what the API saw
            # (an OOM kill, a deadline), or the API's alone where the worker wrote none
            amended = amend_result(
                self.results.trial_dir(trial_id), lambda worker: outcome(spec, worker, seen)
            )
            assert amended is not None, "outcome() always gives a result"
            result = amended
        entry = trial_status(job, pods, result)
        self.recorded[trial_id] = entry
        self.unflushed[trial_id] = entry
        self.live.pop(trial_id, None)
        self.observed[trial_id] = Observation(Phase.RECORDED, status=result.status)
        self.done += 1
        if result.status != "succeeded":
            self.failed += 1
            self.failures.append(
                Failure(trial_id, result.status, result.reason, entry.get("finished") or "")
            )
        return result

    def flushed(self, trial_ids: list[str]) -> None:
        """The controller made these records durable: now (and only now) their trials'
        objects may be cleaned up. Until then their Jobs are what lets a restarted
        controller record them again, idempotently."""
        for trial_id in trial_ids:
            self.unflushed.pop(trial_id, None)
            if self.cleanup:
                self._clean(trial_id)

    def _clean(self, trial_id: str) -> None:
        if trial_id in self._cleaning:
            return
        self._cleaning.add(trial_id)
        self._pool.submit(self._delete, trial_id)

    def _delete(self, trial_id: str) -> None:
        """The Job last: while it exists, a restarted controller knows there is more to delete."""
        name = job_name(self.name, trial_id)
        try:
            for kind in ("Service", "ConfigMap", "Job"):
                self.api.delete(kind, self.namespace, name)
        except Exception as err:  # noqa: BLE001 - the next restart finds the Job and retries
            log.warning("cleaning up trial %s failed: %s", trial_id, err)
            self._cleaning.discard(trial_id)
            if isinstance(err, ClusterError) and err.permanent:
                self.fatal = err

    def wait(self, timeout: float) -> None:
        self._seen = self.caches.changes.wait(self._seen, timeout)

    # --- what the status shows -------------------------------------------------------------

    def in_flight(self) -> list[InFlight]:
        """Every started, unrecorded trial of this campaign, with its phase."""
        out = [
            InFlight(t, e.get("phase") or "", e.get("created") or "", e.get("reason") or "")
            for t, e in self.live.items()
        ]
        with self._lock:
            creating = [t for t in self._creating if t not in self.live]
        out += [InFlight(t, CREATING, _iso(self._creating.get(t))) for t in creating]
        return out

    def blockers(self, now: float) -> list[tuple[str, Blocker]]:
        """(trial, blocker) for every in-flight trial that cannot progress by itself."""
        found: list[tuple[str, Blocker]] = []
        waiting: list[tuple[str, Obj, list[Obj]]] = []
        newest_with_pods = ""  # the Job controller has got at least this far
        for trial_id, entry in list(self.live.items()):
            if entry.get("phase") in ("Succeeded", "Failed"):
                continue
            job, pods = self.caches.trial(self.name, trial_id)
            if job is not None and pods:
                newest_with_pods = max(newest_with_pods, entry.get("created") or "")
            blocker = next((b for b in map(pod_blocker, pods) if b), None)
            if blocker is not None:
                found.append((trial_id, blocker))
            elif job is not None and not pods:
                waiting.append((trial_id, job, pods))
        for trial_id, job, pods in waiting:
            blocker = job_blocker(job, pods, now, newest_with_pods=newest_with_pods)
            if blocker is not None:
                found.append((trial_id, blocker))
        for trial_id, error in list(self.create_errors.items()):
            found.append((trial_id, Blocker("CreateFailed", error)))
        found += [(t, b) for t, b in self.queue_reasons() if b.reason in BLOCKING]
        if self.workloads is not None and self.workloads.fatal is not None:
            unreadable = f"cannot read Kueue's Workloads: {self.workloads.fatal}"
            found.append(("", Blocker("KueueUnreadable", unreadable)))
        return found

    def queue_reasons(self) -> list[tuple[str, Blocker]]:
        """(trial, why Kueue holds it) for every queued trial."""
        return [(t, e["held"]) for t, e in list(self.live.items()) if e.get("held") is not None]

    def phase_counts(self, in_flight: list[InFlight]) -> dict[str, int]:
        return dict(Counter(e.phase for e in in_flight))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._beside.shutdown(wait=True)


def _iso(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _result(entry: dict[str, Any]) -> Result:
    started, finished = _ts(entry.get("started")), _ts(entry.get("finished"))
    return Result(
        status=entry["status"],
        reason=entry.get("reason") or "",
        started_at=entry.get("started"),
        finished_at=entry.get("finished"),
        queued_at=entry.get("queued"),
        admitted_at=entry.get("admitted"),
        admitted_beside=entry.get("beside"),
        wall_time_s=(finished - started) if started and finished else None,
        enforcement={"mode": "kubernetes"},
    )
