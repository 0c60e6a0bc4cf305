"""Pure converters from a trial to the Kubernetes objects that run it (no API calls here).

The Kubernetes executor and the controller create what these functions return, and ``kubectl
create -f`` accepts the same dicts, so everything about a trial's pods (DDP environment, limits,
placement, how failures count) is decided here, in one place, and unit-tested without a
cluster. Their names, labels and restricted security profile come from :mod:`.metadata`.

A trial is an Indexed ``batch/v1`` Job (one pod per DDP rank, rank = completion index), a headless
Service whose name is the pods' ``subdomain`` (so rank 0 is reachable as ``<job>-0.<service>``),
and a ConfigMap holding the trial's ``trial.json``. Results go to the campaign's PVC.
"""

from __future__ import annotations

import json
import math
from pathlib import PurePosixPath
from typing import Any

from trainbed.contract.campaign import Campaign, KubernetesSettings
from trainbed.contract.env import (
    CAMPAIGN_LABEL,
    COLLECTIVE_TIMEOUT,
    COLLECTIVE_TIMEOUT_S,
    DATA,
    ENFORCEMENT,
    INDEX_ANNOTATION,
    MASTER_ADDR,
    MASTER_PORT,
    NODE_NAME,
    RANK,
    RDZV_TIMEOUT,
    RDZV_TIMEOUT_S,
    TRIAL_LABEL,
    WORLD_SIZE,
    thread_variables,
)
from trainbed.contract.kueue import PRIORITY_CLASS_LABEL, QUEUE_LABEL
from trainbed.contract.layout import TrialLayout
from trainbed.contract.quantity import threads_for_cpu
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.kube.objects.metadata import (
    container_security_context,
    job_name,
    level_annotations,
    master_addr,
    object_metadata,
    pod_security_context,
    service_name,
    trial_dir,
    trial_labels,
)

#: Where the trial's ConfigMap is mounted; the worker reads its trial.json there.
SPEC_DIR = "/etc/trainbed"
#: The trial spec's path in the pod (a TrialLayout rooted at SPEC_DIR: the same file name).
SPEC_FILE = TrialLayout(PurePosixPath(SPEC_DIR)).spec_file
#: The worker container's name; the podFailurePolicy's exit-code rule refers to it.
CONTAINER = "worker"
#: Exit code of a container the kernel OOM-killed (SIGKILL); recorded as ``oom_killed``.
OOM_EXIT_CODE = 137
#: ``threads_for_cpu``'s cap when the node's core count is unknown: the CPU limit decides alone.
_ANY_CORES = 1024


# --- the trial -------------------------------------------------------------------------------


def resource_limits(trial: TrialSpec) -> dict[str, str]:
    """The trial's limits, which are also its requests (Guaranteed QoS: timings are not shared)."""
    limits = {"cpu": str(trial.resources.cpu), "memory": str(trial.resources.memory)}
    if trial.resources.gpu > 0:
        limits["nvidia.com/gpu"] = str(trial.resources.gpu)
    return limits


#: The pod annotations the CNI bandwidth plugin (``capabilities: {bandwidth: true}``) shapes by.
INGRESS_BANDWIDTH = "kubernetes.io/ingress-bandwidth"
EGRESS_BANDWIDTH = "kubernetes.io/egress-bandwidth"


def bandwidth_annotations(trial: TrialSpec) -> dict[str, str]:
    """``resources.bandwidth`` on both directions of every rank's pod (none when unset).

    Egress alone would do for a ring all-reduce, where each rank's egress is another's ingress;
    ingress too makes CNIs that shape only one direction (Cilium: egress) still bind.
    """
    if trial.resources.bandwidth is None:
        return {}
    value = str(trial.resources.bandwidth)
    return {INGRESS_BANDWIDTH: value, EGRESS_BANDWIDTH: value}


def enforcement(trial: TrialSpec) -> dict[str, Any]:
    """What the worker records as ``enforcement`` in result.json for a pod."""
    record: dict[str, Any] = {
        "mode": "kubernetes",
        "cpu": str(trial.resources.cpu),
        "memory": str(trial.resources.memory),
        "requests_equal_limits": True,
    }
    if trial.resources.gpu > 0:
        record["gpu"] = trial.resources.gpu
    if trial.resources.bandwidth is not None:
        # a restricted pod cannot read its node's qdiscs: what was asked, said as such
        record["network"] = {
            "mode": "pod-annotations",
            "bandwidth": str(trial.resources.bandwidth),
            "bandwidth_enforced_by": f"{INGRESS_BANDWIDTH}, {EGRESS_BANDWIDTH} (the CNI's)",
            "read_back": None,
        }
    return record


def worker_env(campaign: Campaign, trial: TrialSpec) -> list[dict]:
    """The worker's environment: DDP rendezvous (the rank from the Indexed Job's pod index,
    rank 0 through the headless Service), thread counts, data path and enforcement."""
    threads = threads_for_cpu(trial.resources.cpu, available=_ANY_CORES)
    root = campaign.spec.kubernetes.results_path.rstrip("/")
    index = f"metadata.annotations['{INDEX_ANNOTATION}']"
    return [
        {"name": RANK, "valueFrom": {"fieldRef": {"fieldPath": index}}},
        {"name": WORLD_SIZE, "value": str(trial.workload.parallelism)},
        {"name": MASTER_ADDR, "value": master_addr(campaign.name, trial.trial_id)},
        {"name": MASTER_PORT, "value": str(campaign.spec.kubernetes.master_port)},
        *({"name": k, "value": v} for k, v in thread_variables(threads).items()),
        {"name": DATA, "value": f"{root}/data"},
        {"name": ENFORCEMENT, "value": json.dumps(enforcement(trial), sort_keys=True)},
        {"name": RDZV_TIMEOUT, "value": str(RDZV_TIMEOUT_S)},
        {"name": COLLECTIVE_TIMEOUT, "value": str(COLLECTIVE_TIMEOUT_S)},
        # the node, for the noise guard's record (the analysis can block on it)
        {"name": NODE_NAME, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        # The root filesystem is read-only: caches (torch, matplotlib) go to the /tmp emptyDir.
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def placement(settings: KubernetesSettings) -> dict[str, Any]:
    """``nodeSelector`` and ``tolerations`` of a pod, from ``spec.kubernetes`` (only those set):
    the same for every worker pod and for collect's reader pod, which must reach the nodes
    (and the volume) the workers wrote on."""
    found: dict[str, Any] = {}
    if settings.node_selector:
        found["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        found["tolerations"] = [t.manifest() for t in settings.tolerations]
    return found


def _worker_pod_spec(campaign: Campaign, trial: TrialSpec) -> dict[str, Any]:
    """The pod spec every rank runs."""
    k8s = campaign.spec.kubernetes
    limits = resource_limits(trial)
    spec_path = str(SPEC_FILE)
    return {
        "restartPolicy": "Never",  # podFailurePolicy requires it; the Job counts the retries
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": pod_security_context(),
        **placement(k8s),
        "containers": [
            {
                "name": CONTAINER,
                "image": k8s.image,
                "imagePullPolicy": "IfNotPresent",
                "command": [
                    *("trainbed", "worker", "--spec", spec_path),
                    *("--out", trial_dir(campaign, trial.trial_id)),
                ],
                "env": worker_env(campaign, trial),
                "ports": [{"name": "ddp", "containerPort": k8s.master_port, "protocol": "TCP"}],
                "resources": {"requests": dict(limits), "limits": dict(limits)},
                "securityContext": container_security_context(),
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "volumeMounts": [
                    {"name": "trial-spec", "mountPath": SPEC_DIR, "readOnly": True},
                    {"name": "results", "mountPath": k8s.results_path},
                    {"name": "tmp", "mountPath": "/tmp"},
                    # DataLoader workers pass batches through /dev/shm (64Mi by default).
                    {"name": "dshm", "mountPath": "/dev/shm"},
                ],
            }
        ],
        "volumes": [
            {
                "name": "trial-spec",
                "configMap": {"name": job_name(trial.campaign, trial.trial_id)},
            },
            {"name": "results", "persistentVolumeClaim": {"claimName": k8s.results_pvc}},
            {"name": "tmp", "emptyDir": {}},
            {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        ],
    }


def trial_configmap(
    campaign: Campaign, trial: TrialSpec, *, namespace: str, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The ConfigMap holding ``trial.json`` (the TrialSpec as run), mounted at SPEC_DIR.

    Immutable: a trial's spec never changes, and kubelets need not watch it.
    """
    name = job_name(trial.campaign, trial.trial_id)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_metadata(name, namespace, trial_labels(trial), owner=owner),
        "immutable": True,
        "data": {SPEC_FILE.name: trial.model_dump_json(indent=2)},
    }


def trial_service(
    campaign: Campaign, trial: TrialSpec, *, namespace: str, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The headless Service that gives each rank a DNS name (``<job>-<rank>.<service>``).

    ``publishNotReadyAddresses`` lets ranks resolve rank 0 as soon as its pod has an IP.
    """
    labels = trial_labels(trial)
    port = campaign.spec.kubernetes.master_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": object_metadata(
            service_name(trial.campaign, trial.trial_id), namespace, labels, owner=owner
        ),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {
                CAMPAIGN_LABEL: trial.campaign,
                TRIAL_LABEL: trial.trial_id,
            },
            "ports": [{"name": "ddp", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def pod_failure_policy() -> dict[str, Any]:
    """Disruptions (preemption, eviction, node drain) are retried for free; an OOM kill fails.

    Retrying an OOM-killed trial would only repeat it: the memory limit is a factor level.
    """
    return {
        "rules": [
            {
                "action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
            },
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": CONTAINER,
                    "operator": "In",
                    "values": [OOM_EXIT_CODE],
                },
            },
        ]
    }


def active_deadline(campaign: Campaign) -> int:
    """``activeDeadlineSeconds``: the trial timeout, rounded up to a whole second."""
    return max(1, math.ceil(campaign.spec.execution.trial_timeout_s))


def trial_job(
    campaign: Campaign, trial: TrialSpec, *, namespace: str, owner: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The Indexed Job: one pod per rank, all started together, bounded by the trial timeout.

    ``podReplacementPolicy: Failed`` waits for a failed pod to be gone before its replacement
    starts, so two pods never hold the same rank; it is also the only value podFailurePolicy
    allows. No ``ttlSecondsAfterFinished``: the controller cleans up per ``spec.kubernetes.cleanup``
    once it has recorded the outcome.
    """
    labels = trial_labels(trial)
    levels = level_annotations(trial)
    world = trial.workload.parallelism
    pod_annotations = {
        **levels,
        **campaign.spec.kubernetes.pod_annotations,
        **bandwidth_annotations(trial),  # the trial's level wins over a hand-written one
    }
    pod_spec = _worker_pod_spec(campaign, trial)
    pod_spec["subdomain"] = service_name(trial.campaign, trial.trial_id)
    job_labels = {**labels, **queue_labels(campaign.spec.kubernetes)}
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": object_metadata(
            job_name(trial.campaign, trial.trial_id),
            namespace,
            job_labels,
            annotations=levels,
            owner=owner,
        ),
        "spec": {
            "completionMode": "Indexed",
            "completions": world,
            "parallelism": world,
            "backoffLimit": campaign.spec.execution.retries,
            "activeDeadlineSeconds": active_deadline(campaign),
            "podFailurePolicy": pod_failure_policy(),
            "podReplacementPolicy": "Failed",
            "template": {
                "metadata": {"labels": dict(labels), "annotations": pod_annotations},
                "spec": pod_spec,
            },
        },
    }
    if campaign.spec.kubernetes.queue:
        job["spec"]["suspend"] = True  # Kueue unsuspends it once it admits all ranks at once
    return job


def queue_labels(settings: KubernetesSettings) -> dict[str, str]:
    """The labels that hand a trial's Job to Kueue (none without ``spec.kubernetes.queue``).

    Only the Job carries them: Kueue manages the Job, and pods of a Job it manages are its
    business through the Job, not through their own labels.
    """
    if not settings.queue:
        return {}
    labels = {QUEUE_LABEL: settings.queue}
    if settings.priority_class:
        labels[PRIORITY_CLASS_LABEL] = settings.priority_class
    return labels
