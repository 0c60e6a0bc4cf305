"""Energy meters: NVML on GPU, RAPL powercap on CPU where readable, otherwise none.

A meter reports joules since it started, or ``None`` when nothing can measure it: trainbed never
invents energy. ``source`` says which meter ran, or why none could. A rank has one meter per
device kind (:func:`device_meters`); ``energy_j`` uses the one the trial trains on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from trainbed.contract.gpu import nvml_device_ids

RAPL_ROOT = Path("/sys/class/powercap")


class EnergyMeter(Protocol):
    source: str

    def joules(self) -> float | None: ...


class NoMeter:
    def __init__(self, reason: str) -> None:
        self.source = f"none: {reason}"

    def joules(self) -> float | None:
        return None


class CountedElsewhere:
    """A rank whose energy another rank's meter already counts (RAPL covers the machine)."""

    def __init__(self, reason: str) -> None:
        self.source = reason

    def joules(self) -> float | None:
        return 0.0


class NvmlMeter:
    """Total energy of a rank's GPUs (nvmlDeviceGetTotalEnergyConsumption, millijoules), each
    opened by UUID or host index (:func:`trainbed.contract.gpu.nvml_device_ids`)."""

    def __init__(self, ids: Sequence[str | int]) -> None:
        import pynvml

        if not ids:
            raise ValueError("no NVML device for this rank's CUDA device")
        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handles = [nvml_handle(pynvml, i) for i in ids]
        self._start = [pynvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]
        names = ", ".join(
            f"{i if isinstance(i, str) else f'GPU {i}'} ({_text(pynvml.nvmlDeviceGetName(h))})"
            for i, h in zip(ids, self._handles, strict=True)
        )
        self.source = f"nvml: {names}"

    def joules(self) -> float | None:
        total = 0
        for handle, start in zip(self._handles, self._start, strict=True):
            total += self._nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - start
        return total / 1000.0


def nvml_handle(pynvml: Any, device: str | int) -> Any:
    """An NVML handle by UUID (``GPU-...``) or host index."""
    if isinstance(device, str):
        return pynvml.nvmlDeviceGetHandleByUUID(device)
    return pynvml.nvmlDeviceGetHandleByIndex(device)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RaplMeter:
    """CPU package energy from intel-rapl powercap counters, with wrap-around handled."""

    def __init__(self, zones: list[Path]) -> None:
        self.zones = zones
        self._max = [int((z / "max_energy_range_uj").read_text()) for z in zones]
        self._last = [self._read(z) for z in zones]
        self._total = 0
        self.source = "rapl: " + ", ".join(z.name for z in zones)

    @staticmethod
    def _read(zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def joules(self) -> float | None:
        for i, zone in enumerate(self.zones):
            now = self._read(zone)
            delta = now - self._last[i]
            if delta < 0:
                delta += self._max[i]
            self._total += delta
            self._last[i] = now
        return self._total / 1e6


def rapl_zones(root: Path = RAPL_ROOT) -> list[Path]:
    """Top-level package zones (intel-rapl:N) whose counters this process can read."""
    zones = []
    for zone in sorted(root.glob("intel-rapl:*")):
        if zone.name.count(":") != 1:
            continue  # sub-zones (core, uncore) are inside the package's count
        try:
            int((zone / "energy_uj").read_text())
            int((zone / "max_energy_range_uj").read_text())
        except (OSError, ValueError):
            continue
        zones.append(zone)
    return zones


def gpu_meter(ids: Sequence[str | int]) -> EnergyMeter:
    """NVML's meter of these GPUs, or none with the reason."""
    try:
        return NvmlMeter(ids)
    except Exception as err:  # noqa: BLE001 - any NVML failure means "not measurable"
        return NoMeter(f"NVML unavailable ({type(err).__name__}: {err})")


def cpu_meter(local_rank: int, root: Path | None = None) -> EnergyMeter:
    """The CPU package's meter. Only local rank 0 reads RAPL: the package counter covers the
    whole machine, so every other rank reporting it would count it twice."""
    zones = rapl_zones(root or RAPL_ROOT)
    if not zones:
        return NoMeter("no readable RAPL powercap counters")
    if local_rank != 0:
        return CountedElsewhere("rapl: counted by local rank 0 for the whole machine")
    return RaplMeter(zones)


def rank_gpu_ids(device: str) -> list[str | int]:
    """The NVML identifiers of this rank's CUDA device (``cuda:N``), through
    ``CUDA_VISIBLE_DEVICES`` as the executor set it."""
    index = int(device.split(":")[1]) if ":" in device else 0
    return nvml_device_ids(os.environ.get("CUDA_VISIBLE_DEVICES"), [index])


def device_meters(device: str, local_rank: int) -> dict[str, EnergyMeter]:
    """``{"gpu": ..., "cpu": ...}``: every meter of this rank, for ``energy_by_device``."""
    gpu: EnergyMeter = NoMeter("the trial runs on CPU")
    if device.startswith("cuda"):
        gpu = gpu_meter(rank_gpu_ids(device))
    return {"gpu": gpu, "cpu": cpu_meter(local_rank)}


def energy_meter(device: str, local_rank: int) -> EnergyMeter:
    """The meter of ``energy_j``: the GPU's on a GPU trial, the CPU package's otherwise."""
    meters = device_meters(device, local_rank)
    if device.startswith("cuda"):
        return meters["gpu"]
    meter = meters["cpu"]
    if isinstance(meter, NoMeter):
        return NoMeter("no readable RAPL powercap counters and no GPU")
    return meter
