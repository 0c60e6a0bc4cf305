"""A stand-in for NVML where there is no GPU (here): it records every change and keeps each
device's power limit and clock lock, so the set / read back / restore sequence can be checked.
The real NVML runs in scripts/gpu-check on the GPU machine."""

from __future__ import annotations

from trainbed.orchestrator.local.gpu_assignment import GpuDevice

H200 = GpuDevice(
    0,
    "GPU-aaaa",
    "NVIDIA H200",
    143 << 30,
    power_range_w=(200.0, 700.0),
    power_limit_w=700.0,
    default_power_limit_w=700.0,
    clock_range_mhz=(345, 1980),
)


class FakeNvml:
    """Records every change and keeps a power limit per device; ``fail_on`` raises there."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.limits = {0: 700.0, 1: 450.0}
        self.locked: dict[int, int | None] = {0: None, 1: None}
        self.calls: list[tuple] = []
        self.fail_on = fail_on

    def power_limit_w(self, index: int) -> float:
        return self.limits[index]

    def set_power_limit_w(self, index: int, watts: float) -> None:
        self.calls.append(("power", index, watts))
        self.limits[index] = watts

    def lock_clock_mhz(self, index: int, mhz: int) -> None:
        if self.fail_on == "lock":
            raise RuntimeError("NVMLError_NoPermission")
        self.calls.append(("lock", index, mhz))
        self.locked[index] = mhz

    def reset_clock(self, index: int) -> None:
        self.calls.append(("reset", index))
        self.locked[index] = None

    def sm_clock_mhz(self, index: int) -> int:
        return self.locked[index] or 1980

    def temperature_c(self, index: int) -> float:
        return 30.0

    def devices(self) -> list[GpuDevice]:
        return [H200]
