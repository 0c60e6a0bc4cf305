"""End to end on this machine: real DDP (gloo) trials under enforced limits, then the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.helpers import design_ids, results, run_cli, write_campaign
from trainbed.orchestrator.local.enforcers import detect_enforcer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_fractional_campaign_with_two_ranks_completes(tmp_path: Path) -> None:
    """A 2^(3-1) x 2-replicate campaign on digits with parallelism 2 completes."""
    spec = write_campaign(
        tmp_path / "c.yaml",
        "e2e",
        [
            {"name": "batch_size", "target": "workload.batch_size", "levels": [32, 64]},
            {"name": "lr", "target": "workload.lr", "levels": [0.05, 0.1]},
            {"name": "cpu", "target": "resources.cpu", "levels": ["500m", "1"]},
        ],
        design={"type": "fractional", "generators": ["C = AB"], "replicates": 2, "seed": 3},
        workload={"parallelism": 2, "epochs": 2},
    )
    out = tmp_path / "out"
    proc = run_cli("run", str(spec), "--out", str(out))
    root = out / "e2e"
    assert (root / "campaign.yaml").exists() and (root / "design.csv").exists()
    ids = design_ids(root)
    assert len(ids) == 8
    found = results(root)
    assert sorted(found) == sorted(ids)
    mode = detect_enforcer().mode
    for trial_id, result in found.items():
        assert result["status"] == "succeeded", (trial_id, result["reason"])
        assert result["enforcement"]["mode"] == mode
        assert result["world_size"] == 2
        assert 0.0 <= result["final_accuracy"] <= 1.0
        assert (root / "trials" / trial_id / "logs" / "rank-1.log").exists()
        trial = json.loads((root / "trials" / trial_id / "trial.json").read_text())
        assert trial["workload"]["parallelism"] == 2
    assert "succeeded" in proc.stdout
    # the report says how cpu was held: flagged only where 500m and 1 were not distinguishable
    report = (root / "report" / "index.md").read_text()
    assert (
        "## Limits" in report
        and f"| cpu | `resources.cpu` | 500m | 4 | 0.5 cores | {mode} |" in (report)
    )
    assert ("**Not enforced: cpu**" in report) == (mode == "fallback"), report[:1500]


def test_refuses_to_mix_campaigns_without_resume(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml", "mix", [{"name": "lr", "target": "workload.lr", "levels": [0.05, 0.1]}]
    )
    out = tmp_path / "out"
    (out / "mix").mkdir(parents=True)
    (out / "mix" / "campaign.yaml").write_text("apiVersion: x\n")
    proc = run_cli("run", str(spec), "--out", str(out), check=False)
    assert proc.returncode == 2 and "--resume" in proc.stderr


def test_oom_trial_is_recorded_and_the_campaign_goes_on(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml",
        "oom",
        [{"name": "memory", "target": "resources.memory", "levels": ["120Mi", "1536Mi"]}],
        design={"type": "full", "replicates": 1, "randomize": False},
    )
    out = tmp_path / "out"
    run_cli("run", str(spec), "--out", str(out), "--no-analyze")
    found = results(out / "oom")
    assert len(found) == 2
    by_memory = {
        json.loads((out / "oom" / "trials" / t / "trial.json").read_text())["resources"][
            "memory"
        ]: r
        for t, r in found.items()
    }
    low, high = by_memory["120Mi"], by_memory["1536Mi"]
    assert high["status"] == "succeeded"
    if low["enforcement"]["mode"].startswith("cgroup"):
        assert low["status"] == "oom_killed", low
    else:
        assert low["status"] == "failed" and "memory" in low["reason"], low


def test_fallback_enforcement_records_memory_failure(tmp_path: Path) -> None:
    """The watchdog holds no memory level as written: a memory factor is refused in one line
    before any trial, and with --allow-unenforced it runs, recorded as not enforced."""
    spec = write_campaign(
        tmp_path / "c.yaml",
        "fallback",
        [{"name": "memory", "target": "resources.memory", "levels": ["120Mi", "1536Mi"]}],
        design={"type": "full", "replicates": 1, "randomize": False},
    )
    out = tmp_path / "out"
    fallback = {"TRAINBED_ENFORCEMENT_MODE": "fallback"}
    args = ("run", str(spec), "--out", str(out), "--no-analyze")
    refused = run_cli(*args, env=fallback, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    line = " ".join(refused.stderr.split())
    assert "factor memory (resources.memory) level 120Mi is not enforced as written" in line
    assert "--allow-unenforced" in line and "Traceback" not in line
    assert not out.exists(), "refused before anything was written"
    run_cli(*args, "--allow-unenforced", env=fallback)
    found = results(out / "fallback")
    statuses = sorted(r["status"] for r in found.values())
    assert statuses == ["failed", "succeeded"]
    failed = next(r for r in found.values() if r["status"] == "failed")
    assert "memory" in failed["reason"] and failed["enforcement"]["mode"] == "fallback"
    for result in found.values():
        enforcement = result["enforcement"]
        assert enforcement["memory_enforced"] is False and enforcement["allow_unenforced"]
