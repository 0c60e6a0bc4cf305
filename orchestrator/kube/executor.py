"""The Kubernetes executor: each trial is an Indexed Job + headless Service + ConfigMap.

It implements the driver's Executor protocol over informer caches (watches, never polling), so
the controller runs the very same :class:`~trainbed.orchestrator.driver.Driver` as the local
backend. Creation is idempotent under deterministic names and runs on a small thread pool, so
a slow API round-trip never leaves allowed concurrency idle. What the cluster says about each
trial is recorded in the Campaign's status subresource, which is also how state is rebuilt after
a restart: a trial with a final status there is recorded, a trial with a Job is running or
finished, anything else is pending.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from trainbed.contract.env import CAMPAIGN_LABEL, MANAGED_SELECTOR, TRIAL_LABEL
from trainbed.contract.records import Result, read_result, write_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.driver import Observation, Phase
from trainbed.orchestrator.kube.api import KubeApi
from trainbed.orchestrator.kube.informer import Changes, Informer
from trainbed.orchestrator.kube.manifests import job_name, trial_configmap, trial_job, trial_service
from trainbed.orchestrator.kube.status import job_finished, observation, trial_status
from trainbed.orchestrator.outcome import outcome
from trainbed.orchestrator.plan.spec import Campaign
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class ClusterCaches:
    """Shared informers over trainbed's Jobs and pods in one namespace."""

    def __init__(self, api: KubeApi, namespace: str, changes: Changes | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.changes = changes or Changes()
        serialize = api.api_client.sanitize_for_serialization
        self.jobs = Informer(
            api.lister("Job", namespace),
            serialize,
            self.changes,
            label_selector=MANAGED_SELECTOR,
            name="jobs",
        )
        self.pods = Informer(
            api.lister("Pod", namespace),
            serialize,
            self.changes,
            label_selector=MANAGED_SELECTOR,
            name="pods",
        )

    def start(self) -> ClusterCaches:
        self.jobs.start()
        self.pods.start()
        return self

    def stop(self) -> None:
        self.jobs.stop()
        self.pods.stop()


class KubernetesExecutor:
    """One campaign's trials as Jobs; recorded outcomes live in the Campaign's status."""

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
        self.api = api
        self.caches = caches
        self.namespace = namespace
        self.owner = owner
        self.specs = {trial.trial_id: trial for trial in trials}
        #: Where this campaign's results directory is (the PVC in the cluster), if mounted here.
        self.results = results
        #: trial_id -> status entry with a final ``status`` (from the Campaign's status on start)
        self.recorded: dict[str, dict[str, Any]] = {
            tid: entry for tid, entry in (recorded or {}).items() if entry.get("status")
        }
        self.live: dict[str, dict[str, Any]] = {}
        #: Recorded here but not yet written to the Campaign's status (the controller batches).
        self.unflushed: dict[str, dict[str, Any]] = {}
        self._creating: dict[str, float] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=create_workers, thread_name_prefix="create")
        self._seen = caches.changes.count

    # --- what exists ---------------------------------------------------------------------

    def _jobs(self) -> dict[str, dict[str, Any]]:
        """trial_id -> Job, for this campaign."""
        out = {}
        for job in self.caches.jobs.snapshot().values():
            labels = job["metadata"].get("labels") or {}
            if labels.get(CAMPAIGN_LABEL) == self.campaign.name and TRIAL_LABEL in labels:
                out[labels[TRIAL_LABEL]] = job
        return out

    def _pods(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        for pod in self.caches.pods.snapshot().values():
            labels = pod["metadata"].get("labels") or {}
            if labels.get(CAMPAIGN_LABEL) == self.campaign.name and TRIAL_LABEL in labels:
                out.setdefault(labels[TRIAL_LABEL], []).append(pod)
        return out

    def observe(self) -> dict[str, Observation]:
        observed: dict[str, Observation] = {}
        jobs = self._jobs()
        pods = self._pods()
        live: dict[str, dict[str, Any]] = {}
        for trial_id, entry in self.recorded.items():
            observed[trial_id] = Observation(Phase.RECORDED, status=entry["status"])
        for trial_id, job in jobs.items():
            if trial_id in self.recorded:
                continue
            live[trial_id] = trial_status(job, pods.get(trial_id, []))
            created = _ts(job["metadata"].get("creationTimestamp"))
            phase = Phase.FINISHED if job_finished(job) else Phase.RUNNING
            observed[trial_id] = Observation(phase, started=created)
        with self._lock:
            for trial_id in [t for t in self._creating if t in jobs]:
                del self._creating[trial_id]  # the watch cache has its Job now
            for trial_id, since in self._creating.items():
                if trial_id not in observed:
                    observed[trial_id] = Observation(Phase.RUNNING, started=since)
        self.live = live
        return observed

    # --- actions -------------------------------------------------------------------------

    def start(self, trial: TrialSpec) -> None:
        with self._lock:
            if trial.trial_id in self._creating:
                return
            self._creating[trial.trial_id] = datetime.now().timestamp()
        self._pool.submit(self._create, trial)

    def _create(self, trial: TrialSpec) -> None:
        try:
            ns = self.namespace
            self.api.create(trial_configmap(self.campaign, trial, namespace=ns, owner=self.owner))
            self.api.create(trial_service(self.campaign, trial, namespace=ns, owner=self.owner))
            self.api.create(trial_job(self.campaign, trial, namespace=ns, owner=self.owner))
        except Exception as err:  # noqa: BLE001 - reported in status, retried by the driver
            log.warning("creating trial %s failed: %s", trial.trial_id, err)
            with self._lock:
                self._creating.pop(trial.trial_id, None)
            self.caches.changes.bump()

    def stop(self, trial_id: str, status: str, reason: str) -> None:
        # In the cluster the Job's activeDeadlineSeconds bounds every trial; the driver runs
        # without its own timeout here, so a stop comes only from an explicit request.
        self.api.delete("Job", self.namespace, job_name(self.campaign.name, trial_id))

    def record(self, trial_id: str) -> Result:
        if trial_id in self.recorded:
            return _result(self.recorded[trial_id])
        job = self._jobs()[trial_id]
        assert job_finished(job), f"{trial_id} is recorded only once its Job finished"
        pods = self._pods().get(trial_id, [])
        worker = None
        if self.results is not None:
            try:
                worker = read_result(self.results.trial_dir(trial_id))
            except ValueError:
                worker = None  # an unreadable result is not the worker's word
        seen = observation(job, pods, results_visible=self.results is not None)
        result = outcome(self.specs[trial_id], worker, seen)
        entry = trial_status(job, pods, result)
        self.recorded[trial_id] = entry
        self.unflushed[trial_id] = entry
        if self.results is not None:
            # as the local executor does: the worker's record, corrected by what the API saw
            # (an OOM kill, a deadline), or the API's alone where the worker wrote none
            write_result(self.results.trial_dir(trial_id), result)
        return result

    def flushed(self) -> None:
        """The controller wrote ``unflushed`` into the Campaign's status: now (and only now)
        finished trials' objects may be cleaned up. Until then their Jobs are what lets a
        restarted controller record them again, idempotently."""
        done = list(self.unflushed)
        self.unflushed.clear()
        if self.campaign.spec.kubernetes.cleanup == "delete":
            for trial_id in done:
                name = job_name(self.campaign.name, trial_id)
                for kind in ("Job", "Service", "ConfigMap"):
                    self.api.delete(kind, self.namespace, name)

    def wait(self, timeout: float) -> None:
        self._seen = self.caches.changes.wait(self._seen, timeout)

    def summary(self, total: int) -> dict[str, Any]:
        """Counts and phase for the Campaign's status (and its printer columns)."""
        done = len(self.recorded)
        failed = sum(1 for e in self.recorded.values() if e["status"] != "succeeded")
        running = len(self.live) + len(self._creating)
        phase = "Completed" if done >= total else ("Running" if running or done else "Pending")
        return {
            "phase": phase,
            "total": total,
            "done": done,
            "failed": failed,
            "running": running,
            "succeeded": done - failed,
        }

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _result(entry: dict[str, Any]) -> Result:
    started, finished = _ts(entry.get("started")), _ts(entry.get("finished"))
    return Result(
        status=entry["status"],
        reason=entry.get("reason") or "",
        started_at=entry.get("started"),
        finished_at=entry.get("finished"),
        wall_time_s=(finished - started) if started and finished else None,
        enforcement={"mode": "kubernetes"},
    )
