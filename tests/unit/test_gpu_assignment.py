"""GPUs per rank: the assignment table, the refusal before the first trial, and the CLI's line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.fake_nvml import FakeNvml
from trainbed.contract.errors import UserError
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.cli import app
from trainbed.orchestrator.local import gpu_host
from trainbed.orchestrator.local.gpu_assignment import (
    GpuDevice,
    assign_gpus,
    cuda_visible_devices,
    refuse_shortage,
)
from trainbed.orchestrator.local.gpu_host import local_gpus
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign


def devices(n: int) -> list[GpuDevice]:
    return [GpuDevice(i, f"GPU-{i:04d}", "NVIDIA H200", 143 << 30) for i in range(n)]


def trial(parallelism: int, gpu: int, trial_id: str = "t-0001") -> TrialSpec:
    return TrialSpec(
        campaign="c",
        trial_id=trial_id,
        seed=0,
        workload=Workload(parallelism=parallelism),
        resources=Resources(gpu=gpu),
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("ranks", "per_rank", "host", "expected"),
    [
        (1, 1, 1, [[0]]),
        (2, 1, 2, [[0], [1]]),
        (2, 1, 4, [[0], [1]]),
        (2, 2, 4, [[0, 1], [2, 3]]),
        (3, 1, 8, [[0], [1], [2]]),
        (1, 0, 0, [[]]),
    ],
)
def test_each_rank_gets_disjoint_devices(
    ranks: int, per_rank: int, host: int, expected: list[list[int]]
) -> None:
    got = assign_gpus(ranks, per_rank, devices(host))
    assert [[d.index for d in rank] for rank in got] == expected
    flat = [d.index for rank in got for d in rank]
    assert len(flat) == len(set(flat))


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("ranks", "per_rank", "host"), [(2, 1, 1), (1, 2, 1), (4, 2, 7), (1, 1, 0)]
)
def test_assignment_beyond_the_host_raises(ranks: int, per_rank: int, host: int) -> None:
    with pytest.raises(ValueError, match=f"{ranks * per_rank} GPUs needed, {host} present"):
        assign_gpus(ranks, per_rank, devices(host))


@pytest.mark.timeout(10)
def test_cuda_visible_devices_names_uuids() -> None:
    assert cuda_visible_devices(devices(3)[1:]) == "GPU-0001,GPU-0002"
    assert cuda_visible_devices([]) == ""


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("trials", "host", "why", "refused"),
    [
        ([trial(1, 1)], 1, "", None),
        ([trial(2, 1)], 2, "", None),
        ([trial(1, 0), trial(2, 1, "t-0002")], 1, "", "trial t-0002: 2 rank(s) x resources.gpu 1"),
        ([trial(2, 1)], 1, "", "need 2 GPU(s) of their own, but this host has 1;"),
        ([trial(1, 1)], 0, "NVML unavailable: x", "this host has 0 (NVML unavailable: x)"),
    ],
)
def test_shortage_refusal(
    trials: list[TrialSpec], host: int, why: str, refused: str | None
) -> None:
    if refused is None:
        refuse_shortage(trials, devices(host), why)
        return
    with pytest.raises(UserError) as err:
        refuse_shortage(trials, devices(host), why)
    assert refused in str(err.value)
    assert "\n" not in str(err.value)


def campaign(parallelism: int, gpu: int, **resources: object) -> dict:
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": "gpu-refusal"},
        "spec": {
            "design": {"type": "full", "replicates": 1},
            "factors": [{"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]}],
            "trial": {
                "workload": {"dataset": "synthetic", "parallelism": parallelism, "epochs": 1},
                "resources": {"gpu": gpu, **resources},
            },
            "responses": ["time"],
        },
    }


@pytest.mark.timeout(10)
def test_local_gpus_without_gpu_trials_opens_nothing(tmp_path: Path) -> None:
    parsed = parse_campaign(campaign(2, 0))

    def opener() -> object:
        raise AssertionError("NVML must not be opened for a CPU campaign")

    assert local_gpus(parsed, plan_campaign(parsed).trials, tmp_path / "r", opener) is None


@pytest.mark.timeout(10)
def test_local_gpus_refuses_tuning_a_trial_without_gpus(tmp_path: Path) -> None:
    parsed = parse_campaign(campaign(1, 0, gpu_power_limit=300))
    with pytest.raises(UserError, match=r"resources.gpu_power_limit \(spec.trial.resources"):
        local_gpus(parsed, plan_campaign(parsed).trials, tmp_path / "r", lambda: (None, ""))


@pytest.mark.timeout(120)
def test_two_ranks_on_a_host_without_enough_gpus_are_refused_before_the_first_trial(
    tmp_path: Path,
) -> None:
    """The CLI's one line and exit 2; no trial directory is created. Here there is no GPU at
    all; on the GPU machine (one H200) the same campaign is refused for needing 2."""
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(campaign(2, 1)))
    out = tmp_path / "out"
    got = CliRunner().invoke(app, ["run", str(file), "--out", str(out)])
    assert got.exit_code == 2, got.output
    lines = [line for line in got.output.splitlines() if line.strip()]
    assert len(lines) == 1, got.output
    assert "2 rank(s) x resources.gpu 1 need 2 GPU(s) of their own, but this host has" in lines[0]
    assert not (out / "gpu-refusal" / "trials").exists()


@pytest.mark.timeout(120)
def test_parallel_gpu_trials_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent local trials would take the same GPUs (and set each other's power limits)."""
    monkeypatch.setattr(gpu_host, "open_nvml", lambda: (FakeNvml(), ""))
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(campaign(1, 1)))
    got = CliRunner().invoke(app, ["run", str(file), "--out", str(tmp_path), "--parallel", "2"])
    assert got.exit_code == 2, got.output
    assert "--parallel 2: local GPU trials run one at a time" in got.output
    assert len([line for line in got.output.splitlines() if line.strip()]) == 1
