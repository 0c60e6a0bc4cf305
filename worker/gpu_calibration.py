"""The noise guard on a GPU: a fixed kernel timed with CUDA events, and a look at the device.

:class:`~trainbed.worker.calibration.NoiseProbe` runs it before and after a GPU trial, outside
the trial's timed interval, beside the CPU calibration. The kernel's work is fixed, so its time
moves only with the GPU's clocks (power cap, heat) or with a neighbour sharing the GPU; NVML says
which throttle reasons were active and how many other processes held the device. The flags are
:func:`trainbed.contract.gpu.gpu_noise_flags`'s.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field

from trainbed.contract.env import NODE_NAME
from trainbed.contract.gpu import throttle_names
from trainbed.contract.noise import Calibration

#: REPEATS timed repeats of LOOPS float32 SIZE x SIZE products after WARMUP untimed ones: about
#: 50 ms a repeat on an H200 at full clocks, so well under a second before and after a trial.
SIZE = 4096
LOOPS = 20
REPEATS = 5
WARMUP = 5


@dataclass
class GpuLook:
    """What NVML says of the rank's GPU at one moment (fields None where it cannot)."""

    throttle_reasons: list[str] = field(default_factory=list)
    other_processes: int | None = None
    sm_clock_mhz: int | None = None
    temperature_c: float | None = None


def calibrate_gpu(device: str, *, size: int = SIZE, loops: int = LOOPS) -> Calibration:
    """Time the fixed matrix multiply on ``device`` ``REPEATS`` times; the median repeat."""
    import torch

    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.rand(size, size, device=device, generator=generator)
    b = torch.rand(size, size, device=device, generator=generator)
    out = torch.empty(size, size, device=device)
    for _ in range(WARMUP):
        torch.mm(a, b, out=out)
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(REPEATS):
        start.record()
        for _ in range(loops):
            torch.mm(a, b, out=out)
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    del a, b, out
    torch.cuda.empty_cache()
    return Calibration(
        seconds=statistics.median(times),
        repeats=times,
        work=f"{loops} x matmul {size}x{size} float32 on {device} (CUDA events)",
    )


def look(nvml_id: str | int | None) -> GpuLook:
    """Throttle reasons, other processes, SM clock and temperature of one GPU through NVML;
    an empty look where NVML cannot open it."""
    if nvml_id is None:
        return GpuLook()
    try:
        import pynvml

        from trainbed.worker.energy import nvml_handle

        pynvml.nvmlInit()
        handle = nvml_handle(pynvml, nvml_id)
    except Exception:  # noqa: BLE001 - no NVML: nothing to say, the calibration still speaks
        return GpuLook()
    found = GpuLook()
    try:
        mask = pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle)
        found.throttle_reasons = throttle_names(mask)
    except pynvml.NVMLError:
        pass
    if not os.environ.get(NODE_NAME):  # a pod's PID namespace hides which PID is its own
        try:
            processes = pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
            found.other_processes = sum(1 for p in processes if p.pid != os.getpid())
        except pynvml.NVMLError:
            pass
    try:
        found.sm_clock_mhz = int(pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM))
        found.temperature_c = float(
            pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)
        )
    except pynvml.NVMLError:
        pass
    return found
