"""Why a campaign cannot progress, named from what the API shows. Pure.

A trial that waits forever looks, from outside, like a campaign that is merely slow. These
functions turn what the controller already watches (its trials' Jobs and pods) and one read of
the results PVC into :class:`~trainbed.orchestrator.kube.objects.campaign_status.Blocker` values,
which
become the Campaign's ``Blocked`` condition and the line ``run`` and ``status`` print:

- the results PVC is missing, or Pending with no StorageClass to provision it;
- an image cannot be pulled (``ErrImagePull``, ``ImagePullBackOff``, ...) or its container
  cannot be created;
- a pod cannot be scheduled (the scheduler's own message: "0/100 nodes are available: ...");
- a Job has no pods long after it was created while younger ones have theirs (its pods are
  refused: admission, quota);
- the controller could not create a trial's objects at all;
- Kueue will not admit a queued trial (no such LocalQueue, inadmissible: :mod:`.queueing`),
  or its Workloads cannot be read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from trainbed.orchestrator.kube.objects.campaign_status import Blocker

#: Container waiting reasons that never resolve on their own.
STUCK_WAITING = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
)
#: A Job with no pod this long after its creation, while younger Jobs have pods, is reported.
#: (On a loaded control plane the Job controller's backlog alone delays pods by minutes.)
NO_PODS_AFTER_S = 60.0
#: Which blocker is named first when several hold.
ORDER = (
    "ResultsVolumeMissing",
    "ResultsVolumePending",
    "KueueUnreadable",
    "QueueMissing",
    "Inadmissible",
    *STUCK_WAITING,
    "Unschedulable",
    "NoPods",
    "CreateFailed",
)


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pod_blocker(pod: Mapping[str, Any]) -> Blocker | None:
    """What keeps this pod from running, if anything that will not pass by itself."""
    status = pod.get("status") or {}
    if status.get("phase") not in (None, "Pending"):
        return None
    for key in ("initContainerStatuses", "containerStatuses"):
        for container in status.get(key) or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in STUCK_WAITING:
                said = waiting.get("message") or reason
                return Blocker(reason, f"image {container.get('image')!r}: {said}")
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("reason") == "Unschedulable":
            return Blocker("Unschedulable", cond.get("message") or "no node fits the pod")
    return None


def job_blocker(
    job: Mapping[str, Any],
    pods: list[Mapping[str, Any]],
    now: float,
    *,
    newest_with_pods: str = "",
) -> Blocker | None:
    """A running Job that still has no pod :data:`NO_PODS_AFTER_S` after its creation, while
    a Job created after it already has pods (``newest_with_pods``, its creation time): then
    the Job controller is not merely behind, this Job's pods are refused."""
    if pods:
        return None
    meta = job.get("metadata") or {}
    if not newest_with_pods or newest_with_pods <= (meta.get("creationTimestamp") or ""):
        return None
    status = job.get("status") or {}
    if any(c.get("status") == "True" for c in status.get("conditions") or []):
        return None
    created = _ts(meta.get("creationTimestamp"))
    if created is None or now - created < NO_PODS_AFTER_S:
        return None
    name = meta.get("name")
    return Blocker(
        "NoPods",
        f"Job {name} has no pod {now - created:.0f} s after its creation while younger Jobs "
        f"have theirs: its pods are refused (admission, quota); kubectl describe job {name}",
    )


def pvc_blocker(pvc: Mapping[str, Any] | None, name: str, namespace: str) -> Blocker | None:
    """The results PVC every trial mounts: missing, or Pending with nothing to provision it."""
    if pvc is None:
        return Blocker(
            "ResultsVolumeMissing",
            f"PVC {namespace}/{name} does not exist: install the chart (results.create=true) "
            "or create it, or name yours in spec.kubernetes.results_pvc",
        )
    phase = (pvc.get("status") or {}).get("phase")
    storage_class = (pvc.get("spec") or {}).get("storageClassName")
    if phase == "Pending" and not storage_class and not (pvc.get("spec") or {}).get("volumeName"):
        return Blocker(
            "ResultsVolumePending",
            f"PVC {namespace}/{name} is Pending: it names no StorageClass and the cluster has "
            "no default one; set results.storageClass (helm) or create a PersistentVolume "
            "for it",
        )
    if phase == "Lost":
        lost = f"PVC {namespace}/{name} is Lost: its volume is gone"
        return Blocker("ResultsVolumePending", lost)
    return None


def summarize(found: Iterable[tuple[str, Blocker]]) -> list[Blocker]:
    """One blocker per reason, naming how many trials it holds and one of them, most
    fundamental first (a missing volume explains unschedulable pods)."""
    by_reason: dict[str, list[tuple[str, Blocker]]] = {}
    for trial_id, blocker in found:
        by_reason.setdefault(blocker.reason, []).append((trial_id, blocker))
    out = []
    for reason in sorted(by_reason, key=lambda r: (ORDER.index(r) if r in ORDER else 99, r)):
        items = sorted(by_reason[reason], key=lambda item: item[0])
        first_trial, first = items[0]
        trials = [t for t, _ in items if t]
        if not trials:
            out.append(first)
            continue
        who = f"{len(trials)} trials, e.g. {first_trial}" if len(trials) > 1 else first_trial
        out.append(Blocker(reason, f"{who}: {first.message}"))
    return out
