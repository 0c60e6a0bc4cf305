"""Results volumes on the real node: a hostPath PersistentVolume per claim, pre-bound to it.

The test cluster has no storage provisioner, so a campaign's results PVC would stay Pending.
``up --real-node`` therefore creates the StorageClass ``trainbed-real-node`` (no provisioner:
it names the volumes, it provisions none) and one volume for ``default/trainbed-results``, the
claim that ``spec.kubernetes.results_pvc`` names by default, so ``trainbed run
experiments/quickstart.yaml --backend kubernetes`` finds its results volume as it would after
``helm install``. Tests call :func:`results_volume` for the claims of their own namespaces.

Each volume is a directory under ``<state>/realnode/volumes`` (so ``down`` removes it with the
state), owned by uid/gid 1000: pods run as 1000 with a read-only root, and the kubelet applies
no ``fsGroup`` ownership to hostPath volumes. The PV is ``ReadWriteMany`` (every rank of a
trial mounts it) and has node affinity to the real node, so the scheduler places every pod that
uses it there. Reclaim policy ``Retain``: there is no deleter for hostPath here; a released
volume is deleted with its namespace's claim by :func:`delete_volume`, or at ``down``.
Standard library only.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from pathlib import Path

from tests.cluster import launcher

STORAGE_CLASS = "trainbed-real-node"
#: The PVs this module made carry this label, so ``down`` can find them.
VOLUME_LABEL = ("trainbed.io/real-node-volume", "true")
DEFAULT_CLAIM = ("default", "trainbed-results")
DELETE = {"kind": "DeleteOptions", "apiVersion": "v1"}
#: The uid and gid the trainbed image runs as (the Dockerfile's user).
OWNER = 1000


def _server(state: Path) -> str:
    return json.loads((state / "cluster.json").read_text())["server"]


def volume_dir(state: Path, namespace: str, claim: str) -> Path:
    return state / "realnode" / "volumes" / f"{namespace}.{claim}"


def pv_name(namespace: str, claim: str) -> str:
    """``rn-<namespace>-<claim>``: unique per claim (both are DNS labels, 63 characters each)."""
    return f"rn-{namespace}-{claim}"


def storage_class() -> dict:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS},
        "provisioner": "kubernetes.io/no-provisioner",
        "reclaimPolicy": "Retain",
        "volumeBindingMode": "Immediate",
    }


def persistent_volume(path: Path, namespace: str, claim: str, size: str, node: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": pv_name(namespace, claim), "labels": dict([VOLUME_LABEL])},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": STORAGE_CLASS,
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {"namespace": namespace, "name": claim},
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [node],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def claim_object(namespace: str, claim: str, size: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": STORAGE_CLASS,
            "volumeName": pv_name(namespace, claim),
            "resources": {"requests": {"storage": size}},
        },
    }


def _create(state: Path, path: str, body: dict) -> None:
    status = launcher._request("POST", _server(state) + path, state / "pki", body)
    if status not in (201, 409):
        raise launcher.ClusterError(
            f"creating {body['kind']} {body['metadata']['name']} failed: HTTP {status}"
        )


def results_volume(
    state: Path, namespace: str, claim: str = "trainbed-results", size: str = "10Gi"
) -> Path:
    """A directory on the real node, writable for uid 1000, as the bound claim
    ``namespace/claim`` (its PV and PVC; both kept where they exist). Returns the directory."""
    from tests.cluster import realnode

    path = volume_dir(state, namespace, claim)
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, OWNER, OWNER)
    path.chmod(0o775)
    _create(state, "/apis/storage.k8s.io/v1/storageclasses", storage_class())
    pv = persistent_volume(path, namespace, claim, size, realnode.NODE_NAME)
    _create(state, "/api/v1/persistentvolumes", pv)
    _create(
        state,
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims",
        claim_object(namespace, claim, size),
    )
    return path


def delete_volume(state: Path, namespace: str, claim: str = "trainbed-results") -> None:
    """Delete the PV of ``namespace/claim`` (its claim goes with its namespace)."""
    url = f"{_server(state)}/api/v1/persistentvolumes/{pv_name(namespace, claim)}"
    launcher._request("DELETE", url, state / "pki", DELETE)


def forget(state: Path) -> None:
    """At ``down`` with a control plane that outlives the node: delete this module's PVs and the
    default claim, which would otherwise name directories that are gone (best effort)."""
    try:
        server, pki = _server(state), state / "pki"
    except (OSError, ValueError, KeyError):
        return
    selector = urllib.parse.quote(f"{VOLUME_LABEL[0]}={VOLUME_LABEL[1]}")
    namespace, claim = DEFAULT_CLAIM
    urls = [f"{server}/api/v1/persistentvolumes?labelSelector={selector}"]
    status, body = launcher._get(
        f"{server}/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}", pki
    )
    if status == 200 and json.loads(body)["spec"].get("volumeName") == pv_name(namespace, claim):
        urls.insert(0, f"{server}/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    for url in urls:
        try:
            launcher._request("DELETE", url, pki, DELETE)
        except OSError:
            pass
