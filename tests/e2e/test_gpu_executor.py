"""The local executor's GPU path end to end, with NVML stood in (no GPU here): a real campaign
whose trial sets a power limit and a clock gets its GPU by UUID, has them set before its rank
starts, read back into enforcement and restored after it, waits its cooldown, and records its
GPU in result.json. The rank itself trains on CPU here (torch sees no CUDA); scripts/gpu-check
runs the same path on the GPU machine with the real NVML."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from tests.e2e.helpers import write_campaign
from tests.fake_nvml import FakeNvml
from trainbed.contract.records import read_result
from trainbed.orchestrator.local import gpu_host
from trainbed.orchestrator.run_command import run_campaign


@pytest.mark.timeout(300)
def test_a_tuned_gpu_trial_is_set_read_back_and_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    nvml = FakeNvml()
    monkeypatch.setattr(gpu_host, "open_nvml", lambda: (nvml, ""))
    monkeypatch.setattr(gpu_host.os, "geteuid", lambda: 0)
    file = write_campaign(
        tmp_path / "c.yaml",
        "gpu-path",
        [{"name": "power", "target": "resources.gpu_power_limit", "levels": [300, 700]}],
        design={"type": "full", "replicates": 1, "seed": 1, "randomize": False},
        resources={"gpu": 1, "gpu_clock": 1200},
    )
    spec = yaml.safe_load(file.read_text())
    spec["spec"]["execution"]["cooldown_s"] = 0.5
    file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    console = Console(file=io.StringIO(), width=200)
    assert run_campaign(file, out=out, analyze=False, console=console) == 0, console.file.getvalue()
    root = out / "gpu-path"
    results = [read_result(d) for d in sorted((root / "trials").iterdir())]
    assert all(r is not None and r.status == "succeeded" for r in results)
    by_power = {r.enforcement["gpu_power_limit_target_w"]: r for r in results if r}
    assert set(by_power) == {300.0, 700.0}
    for target, result in by_power.items():
        assert result.enforcement["gpu_power_limit_w"] == target
        assert result.enforcement["gpu_power_limit_confirmed"] is True
        assert result.enforcement["gpu_clock_mhz"] == 1200
        assert [g.model_dump() for g in result.gpus or []] == [
            {"rank": 0, "index": 0, "uuid": "GPU-aaaa", "model": "NVIDIA H200"}
        ]
        cooldown = result.model_extra["cooldown"]
        assert cooldown["ended_by"] == "idle temperature" and cooldown["limit_s"] == 0.5
    # set before each trial, restored after it: the device ends as it began
    assert (nvml.limits[0], nvml.locked[0]) == (700.0, None)
    changes = [c for c in nvml.calls if c[0] != "power" or c[2] in (300.0, 700.0)]
    assert ("lock", 0, 1200) in changes and ("reset", 0) in changes
    assert not (root / "gpu-restore.json").exists()
    # the trial spec as run carries the clock level
    log = (root / "trials" / results[0].trial_id / "trial.json").read_text()
    assert json.loads(log)["resources"]["gpu_clock"] == 1200
