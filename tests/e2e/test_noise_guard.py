"""The noise guard end to end: a campaign runs quietly, then one of its trials is rerun with
busy processes pinned to the core its rank is pinned to. The trial's calibration and contention
fields show it, and ``trainbed analyze`` flags that trial (and only leaves it out on request).

The campaign runs under the fallback enforcement so that the rank is pinned to a known core
(``plan_limits`` pins rank 0 to the first core of the driver's affinity set); the busy processes
are pinned to the same core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import run_cli, write_campaign
from trainbed.contract.layout import ResultsLayout

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
#: Generous: on a shared 2-core machine at load 14 one small trial took minutes.
TIMEOUT_S = 1800

FALLBACK = {"TRAINBED_ENFORCEMENT_MODE": "fallback"}
#: Busy processes beside the rank: it gets a third of its core, so it calibrates ~3x slower.
SPINNERS = 2


def _spin(core: int, count: int) -> list[subprocess.Popen[bytes]]:
    procs = []
    for _ in range(count):
        proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        os.sched_setaffinity(proc.pid, {core})
        procs.append(proc)
    return procs


def test_a_trial_run_beside_busy_processes_is_flagged(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml",
        "noisy",
        [{"name": "lr", "target": "workload.lr", "levels": [0.05, 0.1]}],
        design={"type": "full", "replicates": 2, "seed": 4},
        timeout_s=TIMEOUT_S,
    )
    out = tmp_path / "out"
    run_cli("run", str(spec), "--out", str(out), "--no-analyze", env=FALLBACK, timeout=TIMEOUT_S)
    layout = ResultsLayout(out / "noisy")
    trial_ids = sorted(p.name for p in layout.trials_dir.iterdir())
    assert len(trial_ids) == 4
    loaded = trial_ids[1]
    layout.trial(loaded).result_file.unlink()  # --resume reruns it

    core = sorted(os.sched_getaffinity(0))[0]
    spinners = _spin(core, SPINNERS)
    try:
        time.sleep(1.0)
        run_cli(
            "run",
            *(str(spec), "--out", str(out), "--resume", "--no-analyze"),
            env=FALLBACK,
            timeout=TIMEOUT_S,
        )
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()

    result = json.loads(layout.trial(loaded).result_file.read_text())
    assert result["enforcement"]["affinity"] == [core]
    (noise,) = result["noise"]
    assert noise["calibration_before"]["seconds"] > 0 and noise["calibration_after"]["seconds"] > 0
    assert result["concurrent_trials"] == [] and result["load_samples"]["samples"] > 0

    report = json.loads(run_cli("analyze", str(layout.root), "--json").stdout)
    rows = {row["trial_id"]: row for row in report["noise"]["trials"]}
    quiet = [rows[t] for t in trial_ids if t != loaded]
    # the calibration shows it: far slower than its peers under the same limit
    assert rows[loaded]["calibration_dev_pct"] > 20, rows[loaded]
    slowest_quiet = max(r["calibration_s"] for r in quiet)
    assert rows[loaded]["calibration_s"] > 1.5 * slowest_quiet, (rows[loaded], quiet)
    # the contention shows it: the rank waited for its CPU more than any quiet trial's rank
    assert rows[loaded]["cpu_wait_pct"] > max(r["cpu_wait_pct"] for r in quiet), (
        rows[loaded],
        quiet,
    )
    assert loaded in report["noise"]["flagged"] and report["noise"]["excluded"] == []
    text = (layout.report_dir / "index.md").read_text()
    noise_at = text.index("## Noise")
    assert noise_at < text.index("## accuracy") and loaded in text[noise_at:]
    assert "The fits below **include** the flagged trials" in text

    excluded = json.loads(run_cli("analyze", str(layout.root), "--exclude-noisy", "--json").stdout)
    assert loaded in excluded["noise"]["excluded"]
    assert "left out of every fit below" in (layout.report_dir / "index.md").read_text()
