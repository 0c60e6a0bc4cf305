"""The test cluster as the Kubernetes benchmarks use it.

:func:`real_node_namespace` is a namespace with a results volume on the real node
(``tests/cluster``), removed afterwards; :func:`kwok_namespace` and :func:`drop_namespace` are
the same on a kwok-only cluster, where the volume is a static PV that no pod really writes;
:func:`kwok_queue` gives such a namespace a Kueue LocalQueue, and :func:`job_states` counts its
Jobs cheaply enough to sample while a controller in the same process works.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from kubernetes.client.exceptions import ApiException

from benchmarks.campaigns import ROOT
from tests.cluster import kueue, launcher, realnode, realnode_volume
from tests.cluster.kwok_volume import bound_results_volume, volume_name
from trainbed.orchestrator.kube.adapter.api import KubeApi


def kubectl_or_exit(prog: str, *args: str) -> str:
    """Run kubectl (the test cluster's); exit naming ``prog`` and the command if it fails."""
    done = subprocess.run([launcher.kubectl_path(), *args], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{prog}: kubectl {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def real_node_namespace(prog: str, prefix: str) -> Iterator[str]:
    """A fresh namespace with a results volume on the test cluster's real node (the CRD
    applied, ``KUBECONFIG`` set for the CLI); deleted, with its volume, on the way out."""
    cluster = launcher.running(launcher.STATE)
    if cluster is None or not realnode.alive(launcher.STATE):
        sys.exit(f"{prog}: no real node runs for {launcher.STATE}: see docs/real-node.md")
    os.environ["KUBECONFIG"] = str(cluster.kubeconfig)
    crds = str(ROOT / "charts/trainbed/crds")
    kubectl_or_exit(prog, "apply", "--server-side", "--force-conflicts", "-f", crds)
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kubectl_or_exit(prog, "create", "namespace", namespace)
    realnode_volume.results_volume(launcher.STATE, namespace)
    try:
        yield namespace
    finally:
        kubectl_or_exit(prog, "delete", "namespace", namespace, "--wait=false")
        realnode_volume.delete_volume(launcher.STATE, namespace)


def kwok_namespace(api: KubeApi, prefix: str, with_results: bool = True) -> str:
    """A fresh namespace on a kwok cluster; with a results PVC bound to a static hostPath PV,
    since the controller mounts one into every pod (kwok never runs them)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api.core.create_namespace({"metadata": {"name": name}})
    if with_results:
        bound_results_volume(api, name)
    return name


def drop_namespace(api: KubeApi, namespace: str, wait_s: float = 300) -> None:
    """Delete a :func:`kwok_namespace` and its PV; wait until the namespace is gone, so that the
    next measurement does not share the API server with its garbage collection."""
    api.core.delete_namespace(namespace)
    try:
        api.core.delete_persistent_volume(volume_name(namespace))
    except ApiException as err:
        if err.status != 404:
            raise
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            api.core.read_namespace(namespace)
        except ApiException as err:
            if err.status == 404:
                return
        time.sleep(1)


#: What tests/cluster/simulated.py's trials ask (one rank): a quota for n trials is n times it.
SIM_TRIAL_CPU_M, SIM_TRIAL_MEMORY_MI = 100, 128
#: The LocalQueue :func:`kwok_queue` makes.
LOCAL_QUEUE = "team"


def kwok_queue(cluster: launcher.Cluster, namespace: str, trials: int) -> str:
    """A LocalQueue in ``namespace`` on a ClusterQueue of its own whose quota fits ``trials``
    simulated trials at once; its name. ``kueue.delete_cluster_queue`` removes it."""
    cpu, memory = f"{trials * SIM_TRIAL_CPU_M}m", f"{trials * SIM_TRIAL_MEMORY_MI}Mi"
    kueue.apply(cluster, kueue.queue_objects(namespace, LOCAL_QUEUE, cpu, memory))
    return LOCAL_QUEUE


#: The API server's table form: one row per object, its printer columns and no object.
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def job_states(api: KubeApi, namespace: str) -> Counter[str]:
    """How many of the namespace's Jobs are in each state of the Jobs' ``Status`` printer
    column (Running, Suspended, Complete, Failed, SuccessCriteriaMet...). Asked as a table,
    without the objects: decoding 500 whole Jobs several times a second took the GIL from the
    controller these benchmarks measure (k8s_submit's creation time went from 7 s to 10 s)."""
    path = f"/apis/batch/v1/namespaces/{namespace}/jobs"
    response = api.request("GET", path, accept=TABLE, include_object="None")
    try:
        table = json.loads(response.data)
    finally:
        response.release_conn()
    column = [c["name"] for c in table["columnDefinitions"]].index("Status")
    return Counter(row["cells"][column] for row in table.get("rows") or [])
