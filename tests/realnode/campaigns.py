"""Helpers for trainbed campaigns on the real node: a namespace of their own with a results
volume, the Campaign CRD, the real CLI (``trainbed run|submit|collect|logs|controller`` as
subprocesses with the session's kubeconfig), ``kubectl``, and campaign files derived from the
quickstart (whose ``spec.kubernetes`` targets the real node)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import launcher, realnode_volume
from tests.realnode.conftest import RealNode, unique, wait_for

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"
CRDS = ROOT / "charts" / "trainbed" / "crds"


def kubectl(*args: str, check: bool = True, timeout: float = 120) -> str:
    """kubectl of the pinned release on the session's cluster (the fixture set KUBECONFIG)."""
    done = subprocess.run(
        [launcher.kubectl_path(), *args], capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json"))


def install_crd() -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    kubectl("wait", "--for=condition=Established", "crd/campaigns.trainbed.io", "--timeout=60s")


@contextmanager
def campaign_namespace(node: RealNode, prefix: str = "rn") -> Iterator[str]:
    """A fresh namespace under the restricted Pod Security Standard, with the results claim
    ``trainbed-results`` bound to a directory on the real node; deleted afterwards."""
    name = unique(prefix)
    kubectl("create", "namespace", name)
    kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")
    realnode_volume.results_volume(node.state, name)
    try:
        yield name
    finally:
        kubectl("delete", "namespace", name, "--wait=false", check=False)
        realnode_volume.delete_volume(node.state, name)


def cli(*args: str, timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess:
    """``trainbed ARGS`` (the console script's module), output captured, no live progress."""
    env = {**os.environ, "TRAINBED_NO_PROGRESS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=ROOT,
    )
    if check:
        assert done.returncode == 0, f"trainbed {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


def cli_background(*args: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "TRAINBED_NO_PROGRESS": "1"}
    with open(log, "wb") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
        )


def derived_campaign(path: Path, name: str, **changes: Any) -> Path:
    """The quickstart with ``metadata.name`` set and ``spec`` keys replaced (``design``,
    ``factors``, ``execution``; ``workload``/``resources`` update ``spec.trial``'s)."""
    data = yaml.safe_load(QUICKSTART.read_text())
    data["metadata"]["name"] = name
    spec = data["spec"]
    for key, value in changes.items():
        if key in ("workload", "resources"):
            spec["trial"][key] = {**spec["trial"].get(key, {}), **value}
        else:
            spec[key] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def pods(namespace: str, campaign: str) -> list[dict[str, Any]]:
    return kubectl_json("get", "pods", "-n", namespace, "-l", f"trainbed.io/campaign={campaign}")[
        "items"
    ]


def campaign_status(namespace: str, campaign: str) -> dict[str, Any]:
    obj = kubectl_json("get", "campaign", campaign, "-n", namespace)
    return obj.get("status") or {}


def wait_running_rank(namespace: str, campaign: str, rank: int, timeout: float) -> dict[str, Any]:
    """The first Running pod of ``rank`` whose worker has logged its start line."""

    def started() -> dict[str, Any] | None:
        for pod in pods(namespace, campaign):
            index = pod["metadata"]["annotations"].get("batch.kubernetes.io/job-completion-index")
            if index != str(rank) or pod["status"].get("phase") != "Running":
                continue
            log = kubectl("logs", "-n", namespace, pod["metadata"]["name"], check=False)
            if "trainbed worker: rank" in log:
                return pod
        return None

    return wait_for(started, timeout, f"rank {rank} of {campaign} to start")


def elapsed(since: float) -> float:
    return time.time() - since
