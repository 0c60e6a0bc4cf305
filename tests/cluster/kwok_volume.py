"""A results volume on the kwok cluster: a static hostPath PV pre-bound to the claim the
controller mounts into every trial pod (``trainbed-results``).

kwok plays the pods, so nothing writes to the path; the claim only has to be Bound, as it must
be before the controller starts a trial (a Pending claim is a blocker it names). No
StorageClass provisions it: ``manual`` is a name that only these two objects share.
"""

from __future__ import annotations

from trainbed.orchestrator.kube.adapter.api import KubeApi

#: The claim's name: the chart's and the controller's default.
CLAIM = "trainbed-results"


def volume_name(namespace: str) -> str:
    """The PV's name (cluster-scoped, so named after the namespace it serves)."""
    return f"{namespace}-results"


def bound_results_volume(api: KubeApi, namespace: str) -> None:
    """Create the PV and its claim in ``namespace``; the PV controller binds them at once."""
    pv = volume_name(namespace)
    api.core.create_persistent_volume(
        {
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteMany"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": "manual",
                "hostPath": {"path": f"/tmp/{pv}"},
                "claimRef": {"namespace": namespace, "name": CLAIM},
            },
        }
    )
    api.core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": CLAIM},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "manual",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
