"""The quickstart, as a user runs it, on the real node: ``trainbed run experiments/quickstart.yaml
--backend kubernetes``. Each rank is a pod there; rank 0 is found through the headless Service;
the kubelet sets the limits and each result.json says so from the pod's own cgroup; results go
through the PVC; ``collect`` copies them out; the report has the local backend's structure;
``trainbed logs`` shows a rank's log; ``kubectl get campaigns`` and ``kubectl get pods -l
trainbed.io/campaign=quickstart`` work while it runs.

It runs through a real Kueue (``scripts/cluster up --kueue``) with ``--queue``: a LocalQueue
whose quota fits one trial. Each result.json says when its trial was queued and admitted, and
the report lists the waits in a Queueing section of their own, the only heading the local
backend's report lacks."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from tests.cluster import kueue, launcher, realnode, realnode_volume
from tests.realnode.campaigns import (
    QUICKSTART,
    campaign_namespace,
    cli,
    cli_background,
    install_crd,
    kubectl,
    kubectl_json,
)
from tests.realnode.conftest import RealNode
from trainbed.contract.quantity import cpu_cores, memory_bytes

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(3600)]


def _tree(root: Path) -> set[str]:
    """Relative paths under ``root``; TensorBoard event files (named for host and time) as one."""
    found = set()
    for path in root.rglob("*"):
        if path.is_file():
            relative = path.relative_to(root).as_posix()
            found.add(re.sub(r"(^|/)tb/.*$", r"\1tb/*", relative))
    return found


def _when(stamp: str) -> datetime:
    """A timestamp, to the second (the API server's are whole seconds, the worker's finer)."""
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed.replace(microsecond=0)


def _headings(report: Path) -> list[str]:
    return [line for line in (report / "index.md").read_text().splitlines() if line.startswith("#")]


def test_quickstart_trains_in_pods(real_node: RealNode, tmp_path: Path) -> None:
    install_crd()
    spec = yaml.safe_load(QUICKSTART.read_text())
    name = spec["metadata"]["name"]
    cluster = launcher.running(real_node.state)
    assert cluster is not None
    kueue.up(cluster)
    with campaign_namespace(real_node, "qs") as ns:
        kueue.apply(cluster, kueue.queue_objects(ns, "team", cpu="2", memory="3Gi"))
        out = tmp_path / "k8s"
        log = tmp_path / "run.log"
        run = cli_background(
            "run",
            str(QUICKSTART),
            "--backend",
            "kubernetes",
            "-n",
            ns,
            "--out",
            str(out),
            "--queue",
            "team",
            log=log,
        )
        listed, placed = "", set()
        try:
            while run.poll() is None:  # what a user sees with kubectl while it runs
                listed = kubectl("get", "campaigns", "-n", ns, check=False) or listed
                rows = kubectl_json("get", "pods", "-n", ns, "-l", f"trainbed.io/campaign={name}")
                placed |= {
                    (p["spec"].get("nodeName"), p["status"].get("phase")) for p in rows["items"]
                }
                time.sleep(3)
        finally:
            if run.poll() is None:
                run.kill()
        output = log.read_text()
        assert run.returncode == 0, output
        assert re.search(rf"^{name}\s+(Pending|Running|Completed)\s", listed, re.M), listed
        assert (realnode.NODE_NAME, "Running") in placed, placed
        # every pod that was bound went to the real node (one seen before the scheduler bound
        # it has no node yet)
        assert {node for node, _ in placed if node} == {realnode.NODE_NAME}, placed

        root = out / name
        design = (root / "design.csv").read_text().splitlines()
        ids = [line.split(",")[0] for line in design[1:]]
        assert len(ids) == 8
        volume = realnode_volume.volume_dir(real_node.state, ns, "trainbed-results")
        for trial_id in ids:
            trial = json.loads((root / "trials" / trial_id / "trial.json").read_text())
            result = json.loads((root / "trials" / trial_id / "result.json").read_text())
            assert result["status"] == "succeeded", (trial_id, result["reason"])
            assert result["world_size"] == 2 and 0 <= result["final_accuracy"] <= 1
            waited = [_when(result[k]) for k in ("queued_at", "admitted_at", "started_at")]
            assert waited == sorted(waited), result  # Kubernetes' stamps are whole seconds
            enforcement = result["enforcement"]
            back = enforcement["read_back"]  # the worker read its own cgroup in the pod
            assert enforcement["mode"] == "kubernetes" and enforcement["limits_confirmed"] is True
            assert back["cpu_limit"] == pytest.approx(cpu_cores(trial["resources"]["cpu"]))
            assert back["memory_limit_bytes"] == memory_bytes(trial["resources"]["memory"])
            assert back["cgroup"].startswith("/kubepods"), back  # the kubelet's cgroup
            # written through the PVC: the node's directory holds the worker's own files
            on_volume = volume / name / "trials" / trial_id
            assert (on_volume / "result.json").exists() and (
                on_volume / "timestamps.jsonl"
            ).exists()
            for rank in (0, 1):
                rank_log = (root / "trials" / trial_id / "logs" / f"rank-{rank}.log").read_text()
                assert f"rank {rank} of 2, trial {trial_id}" in rank_log
                assert f"rank {rank} succeeded" in rank_log

        # rank 0 is <job>-0.<service>: the pods found it through the headless Service's DNS
        job = kubectl_json("get", "job", f"{name}-{ids[0]}", "-n", ns)
        env = {
            e["name"]: e.get("value")
            for e in job["spec"]["template"]["spec"]["containers"][0]["env"]
        }
        assert env["MASTER_ADDR"] == f"{name}-{ids[0]}-0.{name}-{ids[0]}"
        service = kubectl_json("get", "service", f"{name}-{ids[0]}", "-n", ns)
        assert service["spec"]["clusterIP"] == "None"

        shown = cli("logs", name, ids[0], "-n", ns, "--rank", "1").stdout
        assert f"trainbed worker: rank 1 of 2, trial {ids[0]}" in shown
        assert "rank 1 succeeded" in shown

    # the local backend on the same file: the same results layout and report structure
    local = tmp_path / "local"
    cli("run", str(QUICKSTART), "--out", str(local))
    assert (local / name / "design.csv").read_text().splitlines() == design
    for trial_id in ids:
        k8s_tree = _tree(root / "trials" / trial_id)
        assert k8s_tree == _tree(local / name / "trials" / trial_id), trial_id
        keys = [
            set(json.loads((r / name / "trials" / trial_id / "result.json").read_text()))
            for r in (out, local)
        ]
        assert keys[0] == keys[1], keys[0] ^ keys[1]
    assert _tree(root / "report") == _tree(local / name / "report")
    queueing = "## Queueing (Kueue)"
    headings = _headings(root / "report")
    assert queueing in headings
    assert [h for h in headings if h != queueing] == _headings(local / name / "report")
    assert "8 trials waited in a Kueue queue" in (root / "report" / "index.md").read_text()
