"""On a machine with a GPU (skipped elsewhere): NVML's inventory, the power sampler's real
reader, the CUDA-event timing of an epoch and the GPU calibration kernel. scripts/gpu-check runs
these on the GPU machine; the power limit and clock changes are checked there by a campaign."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainbed.worker.epoch_loop import run_epoch
from trainbed.worker.models import build_model
from trainbed.worker.optimizers import make_optimizer
from trainbed.worker.timing import IterationLog


def _nvml() -> bool:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:  # noqa: BLE001 - no library, no driver: no GPU here
        return False


pytestmark = pytest.mark.skipif(
    not (torch.cuda.is_available() and _nvml()), reason="needs a CUDA GPU and NVML"
)


@pytest.mark.timeout(60)
def test_inventory_names_the_gpu_and_its_ranges() -> None:
    from trainbed.orchestrator.local.gpu_host import open_nvml

    nvml, why = open_nvml()
    assert nvml is not None, why
    devices = nvml.devices()
    assert devices and devices[0].uuid.startswith("GPU-")
    assert devices[0].memory_bytes > 1 << 30
    assert devices[0].power_range_w is not None and devices[0].power_limit_w is not None
    low, high = devices[0].power_range_w
    assert 0 < low < high and low <= devices[0].power_limit_w <= high
    assert devices[0].clock_range_mhz is not None and devices[0].clock_range_mhz[1] > 500


@pytest.mark.timeout(60)
def test_power_sampler_reads_the_gpu_at_its_rate() -> None:
    from trainbed.worker.power_sampler import PowerSampler, nvml_reader

    sampler = PowerSampler(nvml_reader([0]), hz=10).start()
    sampler.resume()
    a = torch.rand(4096, 4096, device="cuda")
    deadline = time.perf_counter() + 1.5
    while time.perf_counter() < deadline:
        a = (a @ a).clamp_(0, 1)
    torch.cuda.synchronize()
    sampler.stop()
    summary = sampler.summary()
    assert summary is not None, sampler.errors
    assert summary.sample_hz >= 5 and summary.samples >= 8
    assert summary.mean_w is not None and summary.mean_w > 0
    assert summary.peak_w is not None and summary.peak_w >= summary.mean_w
    assert summary.utilization_mean_pct is not None and summary.utilization_mean_pct > 0
    assert summary.memory_used_max_bytes and summary.memory_used_max_bytes > 64 << 20


@pytest.mark.timeout(120)
def test_epoch_on_gpu_is_timed_with_cuda_events() -> None:
    device = torch.device("cuda:0")
    gen = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(1024, 1, 28, 28, generator=gen), torch.randint(0, 10, (1024,)))
    loader = DataLoader(data, batch_size=128)
    model = build_model("FashionMNISTCNN", 1, 28, 10, True).to(device)
    optimizer = make_optimizer("sgd", model.parameters(), 0.01)
    log = IterationLog(0)
    totals = run_epoch(model, loader, nn.CrossEntropyLoss(), optimizer, log, 1, 0, device=device)
    rows = log.rows
    assert totals.steps == len(loader) == len(rows)
    data_wait, compute, step = rows[:, 5], rows[:, 6], rows[:, 7]
    assert (compute > 0).all() and (data_wait > 0).all()
    # the device's time fits in the host's step, give or take the events' resolution
    assert (compute <= step + 1e-3).all()
    assert step[0] > float(sorted(step[1:])[len(step) // 2])  # the first iteration stands apart


@pytest.mark.timeout(60)
def test_gpu_calibration_kernel_and_look() -> None:
    from trainbed.worker.gpu_calibration import calibrate_gpu, look

    found = calibrate_gpu("cuda:0")
    assert found.seconds > 0 and len(found.repeats) == 5
    assert max(found.repeats) / min(found.repeats) < 3
    seen = look(0)
    assert seen.sm_clock_mhz and seen.temperature_c is not None
    assert seen.other_processes is not None
