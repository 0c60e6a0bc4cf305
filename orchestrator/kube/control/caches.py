"""Shared informer caches over trainbed's Jobs and pods in one namespace, indexed by campaign and
trial: what every Kubernetes executor reads instead of asking the API.

Each object is trimmed (:func:`slim`) before it is cached, so the caches' memory stays bounded at
10,000 trials, and each change marks its trial dirty, so an executor's pass reads only the trials
that changed since its last one.
"""

from __future__ import annotations

import threading
from typing import Any

from trainbed.contract.env import CAMPAIGN_LABEL, INDEX_ANNOTATION, MANAGED_SELECTOR, TRIAL_LABEL
from trainbed.contract.errors import ClusterError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.adapter.informer import Changes, Informer, Obj
from trainbed.orchestrator.kube.objects.queueing import Span, admission_span


def slim(obj: Obj) -> Obj:
    """What the executor reads of a Job or a pod: names, trainbed's labels, the rank
    annotation, the creation time, the status, and a Job's ``suspend``. The rest of the spec,
    managedFields and the level annotations stay out of the cache (they are most of an
    object's size)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    kept: dict[str, Any] = {
        "name": meta.get("name"),
        "labels": meta.get("labels") or {},
        "creationTimestamp": meta.get("creationTimestamp"),
    }
    if INDEX_ANNOTATION in annotations:
        kept["annotations"] = {INDEX_ANNOTATION: annotations[INDEX_ANNOTATION]}
    slimmed = {"metadata": kept, "status": obj.get("status") or {}}
    suspend = (obj.get("spec") or {}).get("suspend")
    if suspend is not None:  # a Job Kueue holds: suspended until admitted
        slimmed["spec"] = {"suspend": suspend}
    return slimmed


def slim_workload(obj: Obj) -> Obj:
    """What the executor reads of a Kueue Workload: its name, the Job it stands for (its
    controller owner) and its conditions."""
    meta = obj.get("metadata") or {}
    owners = [o.get("name") for o in meta.get("ownerReferences") or [] if o.get("kind") == "Job"]
    conditions = (obj.get("status") or {}).get("conditions") or []
    return {
        "metadata": {"name": meta.get("name"), "job": owners[0] if owners else None},
        "status": {"conditions": conditions},
    }


def _trial_key(obj: Obj) -> tuple[str | None, str | None]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(CAMPAIGN_LABEL), labels.get(TRIAL_LABEL)


class ClusterCaches:
    """Shared informers over trainbed's Jobs and pods in one namespace, indexed by campaign
    and trial, with the set of trials that changed per campaign."""

    def __init__(self, api: KubeApi, namespace: str, changes: Changes | None = None) -> None:
        self.api = api
        self.namespace = namespace
        self.changes = changes or Changes()
        self._lock = threading.Lock()
        self._jobs: dict[str, dict[str, Obj]] = {}
        self._pods: dict[str, dict[str, dict[str, Obj]]] = {}
        self._dirty: dict[str, set[str]] = {}
        #: Job name -> Kueue's Workload for it; Job name -> (campaign, trial)
        self._workloads: dict[str, Obj] = {}
        self._job_names: dict[str, tuple[str, str]] = {}
        #: Workload name -> (its Job, its latest admission), kept after the Workload is gone:
        #: which work Kueue admitted beside a trial is read when the trial is recorded
        self._admissions: dict[str, tuple[str | None, Span]] = {}
        self.workloads: Informer | None = None
        self.jobs = Informer(
            api.lister("Job", namespace),
            self.changes,
            label_selector=MANAGED_SELECTOR,
            name="jobs",
            transform=slim,
            on_change=self._job_changed,
        )
        self.pods = Informer(
            api.lister("Pod", namespace),
            self.changes,
            label_selector=MANAGED_SELECTOR,
            name="pods",
            transform=slim,
            on_change=self._pod_changed,
        )

    def watch_workloads(self) -> Informer:
        """Start (once) the informer over Kueue's Workloads in the namespace, for campaigns
        with a queue; a failure to list (no Kueue, no permission) is its ``fatal``."""
        with self._lock:
            informer = self.workloads
            if informer is None:
                informer = self.workloads = Informer(
                    self.api.lister("Workload", self.namespace),
                    self.changes,
                    name="workloads",
                    transform=slim_workload,
                    on_change=self._workload_changed,
                )
                started = False
            else:
                started = True
        if not started:
            try:
                informer.start()
            except ClusterError:
                pass  # kept in informer.fatal: the executor reports it as what blocks
        return informer

    def _workload_changed(self, name: str, old: Obj | None, new: Obj | None) -> None:
        job = ((new or old or {}).get("metadata") or {}).get("job")
        if new is not None:
            with self._lock:
                before = self._admissions.get(name)
                span = admission_span(new, before[1] if before else None)
                if span is not None:
                    self._admissions[name] = (job, span)
        if not job:
            return
        with self._lock:
            if new is None:
                self._workloads.pop(job, None)
            else:
                self._workloads[job] = new
            owner = self._job_names.get(job)
            if owner is not None:
                self._dirty.setdefault(owner[0], set()).add(owner[1])

    def admissions(self) -> dict[str, tuple[str | None, Span]]:
        """Workload name -> (its Job, its latest admission) of every Workload seen admitted."""
        with self._lock:
            return dict(self._admissions)

    def workload(self, job_name: str) -> Obj | None:
        """The Workload Kueue keeps for the Job ``job_name``, if any."""
        with self._lock:
            return self._workloads.get(job_name)

    def _job_changed(self, name: str, old: Obj | None, new: Obj | None) -> None:
        campaign, trial = _trial_key(new or old or {})
        if not campaign or not trial:
            return
        with self._lock:
            jobs = self._jobs.setdefault(campaign, {})
            if new is None:
                jobs.pop(trial, None)
                self._job_names.pop(name, None)
            else:
                jobs[trial] = new
                self._job_names[name] = (campaign, trial)
            self._dirty.setdefault(campaign, set()).add(trial)

    def _pod_changed(self, name: str, old: Obj | None, new: Obj | None) -> None:
        campaign, trial = _trial_key(new or old or {})
        if not campaign or not trial:
            return
        with self._lock:
            trials = self._pods.setdefault(campaign, {})
            pods = trials.setdefault(trial, {})
            if new is None:
                pods.pop(name, None)
                if not pods:
                    del trials[trial]
            else:
                pods[name] = new
            self._dirty.setdefault(campaign, set()).add(trial)

    def trial(self, campaign: str, trial: str) -> tuple[Obj | None, list[Obj]]:
        """The trial's Job (or None) and its pods."""
        with self._lock:
            job = self._jobs.get(campaign, {}).get(trial)
            pods = list(self._pods.get(campaign, {}).get(trial, {}).values())
        return job, pods

    def drain(self, campaign: str) -> set[str]:
        """The trials of ``campaign`` whose Job or pods changed since the last drain."""
        with self._lock:
            return self._dirty.pop(campaign, set())

    def mark_all(self, campaign: str) -> None:
        """Treat every trial of ``campaign`` the caches hold as changed (a new executor)."""
        with self._lock:
            known = set(self._jobs.get(campaign, {})) | set(self._pods.get(campaign, {}))
            self._dirty.setdefault(campaign, set()).update(known)

    def start(self) -> ClusterCaches:
        self.jobs.start()
        self.pods.start()
        return self

    def stop(self) -> None:
        self.jobs.stop()
        self.pods.stop()
        if self.workloads is not None:
            self.workloads.stop()
