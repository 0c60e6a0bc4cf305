"""Energy meters: NVML on GPU, RAPL powercap on CPU where readable, otherwise none.

A meter reports joules since it started, or ``None`` when nothing can measure it: trainbed never
invents energy. ``source`` says which meter ran, or why none could.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

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
    """Total energy of one GPU (nvmlDeviceGetTotalEnergyConsumption, millijoules)."""

    def __init__(self, index: int) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self._start = pynvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        self.source = f"nvml: GPU {index} ({pynvml.nvmlDeviceGetName(self._handle)})"

    def joules(self) -> float | None:
        now = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        return (now - self._start) / 1000.0


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


def energy_meter(device: str, local_rank: int) -> EnergyMeter:
    """The best meter for this rank. On CPU only local rank 0 reads RAPL: the package counter
    covers the whole machine, so every other rank reporting it would count it twice."""
    if device.startswith("cuda"):
        try:
            return NvmlMeter(local_rank)
        except Exception as err:  # noqa: BLE001 - any NVML failure means "not measurable"
            return NoMeter(f"NVML unavailable ({type(err).__name__}: {err})")
    zones = rapl_zones()
    if not zones:
        return NoMeter("no readable RAPL powercap counters and no GPU")
    if local_rank != 0:
        return CountedElsewhere("rapl: counted by local rank 0 for the whole machine")
    return RaplMeter(zones)
