"""The results volume: the PVC every trial writes to, and the reader pod that ``collect`` uses.

Pure converters like :mod:`~trainbed.orchestrator.kube.objects.manifests` (whose naming, labels and
restricted profile they share). The Helm chart creates the PVC in a real install;
:func:`results_pvc` is for tests and for clusters set up without the chart. ``trainbed collect``
runs from the user's kubeconfig: it creates :func:`reader_pod`, streams ``tar`` out of it over the
exec API and deletes it, so the controller needs no ``pods/exec``.
"""

from __future__ import annotations

from typing import Any

from trainbed.contract.env import (
    COMPONENT_LABEL,
    MANAGED_BY,
    MANAGER,
    NAME_LABEL,
    READER_COMPONENT,
    RESULTS_COMPONENT,
)
from trainbed.orchestrator.kube.objects.metadata import (
    campaign_labels,
    container_security_context,
    object_metadata,
    pod_security_context,
)


def results_pvc(
    name: str,
    size: str,
    storage_class: str | None,
    namespace: str,
    *,
    access_mode: str = "ReadWriteMany",
) -> dict[str, Any]:
    """The results PVC. ReadWriteMany by default: ranks of a trial may run on different nodes.

    ``storage_class=None`` leaves the cluster's default class to decide.
    """
    spec: dict[str, Any] = {
        "accessModes": [access_mode],
        "resources": {"requests": {"storage": size}},
    }
    if storage_class is not None:
        spec["storageClassName"] = storage_class
    labels = {
        NAME_LABEL: MANAGER,
        COMPONENT_LABEL: RESULTS_COMPONENT,
        MANAGED_BY: MANAGER,
    }
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": object_metadata(name, namespace, labels),
        "spec": spec,
    }


def reader_pod_name(campaign_name: str) -> str:
    """``<campaign>-reader``; it cannot clash with a trial's ``<campaign>-t<hex>``."""
    return f"{campaign_name}-reader"


def reader_pod(
    campaign_name: str,
    pvc: str,
    results_path: str,
    namespace: str,
    *,
    image: str = "trainbed:latest",
    lifetime_s: int = 3600,
    placement: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A short-lived pod that mounts the results PVC read-only for ``trainbed collect``.

    Collect streams ``tar`` out of it over the exec API, then deletes it; the ``sleep`` and
    ``activeDeadlineSeconds`` bound its life if collect dies first. ``placement`` is the
    workers' ``nodeSelector`` and ``tolerations`` (:func:`~.manifests.placement`): a volume
    bound on a tainted node (a local or hostPath PV) is only reachable from there.
    """
    labels = {**campaign_labels(campaign_name), COMPONENT_LABEL: READER_COMPONENT}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": object_metadata(reader_pod_name(campaign_name), namespace, labels),
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": lifetime_s,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "terminationGracePeriodSeconds": 0,
            "securityContext": pod_security_context(),
            **(placement or {}),
            "containers": [
                {
                    "name": "reader",
                    "image": image,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", str(lifetime_s)],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "securityContext": container_security_context(),
                    "volumeMounts": [
                        {"name": "results", "mountPath": results_path, "readOnly": True},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {
                    "name": "results",
                    "persistentVolumeClaim": {"claimName": pvc, "readOnly": True},
                },
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }
