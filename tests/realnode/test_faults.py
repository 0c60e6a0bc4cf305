"""Faults, for real, on the real node: the kubelet OOM-kills a rank; a rank's pod is deleted
mid-trial; the controller is killed mid-campaign and started again. Each campaign is the
quickstart's workload (spec.kubernetes targets the node) cut down to what the fault needs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.realnode.campaigns import (
    campaign_namespace,
    campaign_status,
    cli,
    cli_background,
    derived_campaign,
    install_crd,
    kubectl,
    kubectl_json,
    pods,
    wait_running_rank,
)
from tests.realnode.conftest import RealNode, wait_for

pytestmark = [pytest.mark.realnode, pytest.mark.timeout(1800)]

FULL = {"type": "full", "replicates": 1, "randomize": False}


def _results(root: Path) -> dict[str, dict]:
    found = {}
    for trial in sorted((root / "trials").iterdir()):
        spec = json.loads((trial / "trial.json").read_text())
        found[json.dumps(spec["levels"], sort_keys=True)] = json.loads(
            (trial / "result.json").read_text()
        )
    return found


def test_oom_kill_is_recorded_with_its_exit_code(real_node: RealNode, tmp_path: Path) -> None:
    """A memory level below what the model needs (importing torch alone needs more than 64Mi
    of anonymous memory; at 200Mi the cgroup v1 kernel kept reclaiming the libraries' pages for
    minutes instead of killing, and the import crawled): the
    kubelet's cgroup kills the rank, the Job fails on exit 137, and the trial is ``oom_killed``
    with that exit code; the other level succeeds."""
    install_crd()
    file = derived_campaign(
        tmp_path / "oom.yaml",
        "oom",
        design=FULL,
        factors=[{"name": "memory", "target": "resources.memory", "levels": ["64Mi", "1536Mi"]}],
        workload={"epochs": 1, "target_accuracy": None},
        resources={"cpu": "500m"},
    )
    with campaign_namespace(real_node, "oom") as ns:
        out = tmp_path / "out"
        cli(
            "run", str(file), "--backend", "kubernetes", "-n", ns, "--out", str(out), "--no-analyze"
        )
        found = _results(out / "oom")
        low, high = found['{"memory": "64Mi"}'], found['{"memory": "1536Mi"}']
        assert high["status"] == "succeeded", high["reason"]
        assert low["status"] == "oom_killed", low
        assert 137 in low["exit_codes"].values(), low["exit_codes"]
        assert "memory limit" in low["reason"]
        killed = [
            s["state"]["terminated"]
            for p in pods(ns, "oom")
            for s in p["status"].get("containerStatuses", [])
            if (s["state"].get("terminated") or {}).get("reason") == "OOMKilled"
        ]
        assert killed and killed[0]["exitCode"] == 137  # the kubelet's word, not trainbed's


def test_deleted_rank_pod_fails_the_trial_and_the_next_runs(
    real_node: RealNode, tmp_path: Path
) -> None:
    """Rank 1's pod is deleted mid-training: the trial is recorded as failed (or terminated)
    within a bounded time, never hangs to its deadline, and the next trial runs and succeeds."""
    install_crd()
    file = derived_campaign(
        tmp_path / "del.yaml",
        "deleted",
        design=FULL,
        # run order: the long trial first (200 epochs of digits), then a short one
        factors=[{"name": "epochs", "target": "workload.epochs", "levels": [200, 1]}],
        workload={"target_accuracy": None},
        resources={"cpu": "500m"},
        execution={"trial_timeout_s": 1200, "concurrency": 1},
    )
    with campaign_namespace(real_node, "del") as ns:
        out = tmp_path / "out"
        run = cli_background(
            "run", str(file), "--backend", "kubernetes", "-n", ns, "--out", str(out),
            "--no-analyze", log=tmp_path / "run.log",
        )  # fmt: skip
        try:
            victim = wait_running_rank(ns, "deleted", 1, 600)
            deleted = time.time()
            kubectl("delete", "pod", "-n", ns, victim["metadata"]["name"], "--wait=false")
            first = victim["metadata"]["labels"]["trainbed.io/trial"]

            def recorded() -> str | None:
                status = campaign_status(ns, "deleted")
                failures = {f["trial"]: f for f in status.get("failures") or []}
                return failures.get(first, {}).get("status")

            status = wait_for(recorded, 300, "the trial with a deleted pod to be recorded")
            took = time.time() - deleted
            assert run.wait(timeout=900) == 0, (tmp_path / "run.log").read_text()
        finally:
            if run.poll() is None:
                run.kill()
        assert status in ("failed", "terminated"), status
        assert took < 300
        found = _results(out / "deleted")
        assert found['{"epochs": 200}']["status"] in ("failed", "terminated")
        assert found['{"epochs": 1}']["status"] == "succeeded", found['{"epochs": 1}']["reason"]


def test_controller_killed_mid_campaign_resumes_without_duplicates(
    real_node: RealNode, tmp_path: Path
) -> None:
    """``trainbed controller`` is SIGKILLed while a trial runs and started again: every Job
    is created once (the ones seen before the kill keep their uid), each trial's pods are one
    per rank, and the campaign completes with every trial recorded once."""
    install_crd()
    file = derived_campaign(
        tmp_path / "ctl.yaml",
        "restart",
        design={"type": "full", "replicates": 1, "randomize": False},
        factors=[{"name": "lr", "target": "workload.lr", "levels": [0.02, 0.1]}],
        workload={"epochs": 8, "target_accuracy": None},
        resources={"cpu": "500m"},
    )
    with campaign_namespace(real_node, "ctl") as ns:
        cli("submit", str(file), "-n", ns)
        controller = cli_background("controller", "-n", ns, log=tmp_path / "controller-1.log")
        try:
            wait_running_rank(ns, "restart", 0, 600)
            before = {
                j["metadata"]["name"]: j["metadata"]["uid"]
                for j in kubectl_json("get", "jobs", "-n", ns)["items"]
            }
            controller.send_signal(signal.SIGKILL)
            controller.wait(30)
            time.sleep(5)  # the trial goes on without a controller
            controller = cli_background("controller", "-n", ns, log=tmp_path / "controller-2.log")
            status = wait_for(
                lambda: (
                    (campaign_status(ns, "restart").get("phase") == "Completed")
                    and campaign_status(ns, "restart")
                ),
                900,
                "the campaign to complete after the restart",
            )
        finally:
            controller.kill()
            controller.wait(30)
        assert before, "a Job existed when the controller was killed"
        jobs = kubectl_json("get", "jobs", "-n", ns)["items"]
        trials = [j["metadata"]["labels"]["trainbed.io/trial"] for j in jobs]
        assert len(trials) == len(set(trials)) == 2, trials
        for job in jobs:
            if job["metadata"]["name"] in before:
                assert job["metadata"]["uid"] == before[job["metadata"]["name"]], "recreated"
        per_trial: dict[str, int] = {}
        for pod in pods(ns, "restart"):
            trial = pod["metadata"]["labels"]["trainbed.io/trial"]
            per_trial[trial] = per_trial.get(trial, 0) + 1
        assert per_trial == {t: 2 for t in trials}, per_trial
        assert (status["done"], status["failed"], status["total"]) == (2, 0, 2), status
        out = tmp_path / "out"
        cli("collect", "restart", "-n", ns, "--out", str(out))
        found = _results(out / "restart")
        assert [r["status"] for r in found.values()] == ["succeeded", "succeeded"]
