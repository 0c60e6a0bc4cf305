"""A rank's energy account: the whole trial, the training epochs alone, to accuracy, by device.

A power-limit study asks what the training itself cost: on the GPU machine, a ResNet50 trial's
``energy_j`` moved under 10% between 200 and 700 W because start-up and validation at idle power
dominate, while training time doubled. So the ledger keeps, from the same meters:

- the whole span (first epoch to the end), per device (``energy_by_device``), and the meter of
  the device the trial trains on (``energy_j``);
- the training epochs alone (``train_energy_j``), between :meth:`train_begin` and
  :meth:`train_end`, during which the GPU power sampler runs too;
- the test-set passes, subtracted from energy to accuracy as they are from time to accuracy.

:func:`pack` and :func:`unpack` carry optional numbers through one all-reduce, so a sum over
ranks is null where any rank could not measure: never a partial sum passed off as the whole.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from trainbed.contract.env import POWER_SAMPLE_HZ
from trainbed.worker.energy import EnergyMeter, NoMeter, device_meters, rank_gpu_ids
from trainbed.worker.power_sampler import DEFAULT_HZ, PowerSampler, nvml_reader


def _delta(now: float | None, start: float | None) -> float | None:
    if now is None or start is None:
        return None
    return now - start


@dataclass
class EnergyLedger:
    """The meters of one rank (``{"gpu": ..., "cpu": ...}``), ``primary`` the one of
    ``energy_j``; an optional power sampler that runs while training does."""

    meters: dict[str, EnergyMeter]
    primary: str
    sampler: PowerSampler | None = None
    #: which sampler ran (``nvml: 10 Hz``), or ``none: <why>``
    power_source: str = "none: not started"
    train_j: dict[str, float | None] = field(default_factory=dict)
    test_j: float = 0.0
    _start: dict[str, float | None] = field(default_factory=dict)
    _span: dict[str, float | None] = field(default_factory=dict)
    _test_at: float | None = None

    @classmethod
    def unmeasured(cls, reason: str) -> EnergyLedger:
        return cls({"gpu": NoMeter(reason), "cpu": NoMeter(reason)}, "cpu")

    @property
    def meter(self) -> EnergyMeter:
        return self.meters[self.primary]

    def _read(self) -> dict[str, float | None]:
        return {k: m.joules() for k, m in self.meters.items()}

    def begin(self) -> None:
        """The account opens (the first epoch is about to start)."""
        self._start = self._read()
        self.train_j = {k: (0.0 if v is not None else None) for k, v in self._start.items()}

    def train_begin(self) -> None:
        self._span = self._read()
        if self.sampler is not None:
            self.sampler.resume()

    def train_end(self) -> None:
        if self.sampler is not None:
            self.sampler.pause()
        now = self._read()
        for key, start in self._span.items():
            used = _delta(now[key], start)
            total = self.train_j.get(key)
            self.train_j[key] = None if used is None or total is None else total + used

    def test_begin(self) -> None:
        self._test_at = self.meter.joules()

    def test_end(self) -> None:
        self.test_j += _delta(self.meter.joules(), self._test_at) or 0.0

    def so_far(self) -> float | None:
        """Energy since :meth:`begin` on the primary meter, test passes excluded (to accuracy)."""
        used = _delta(self.meter.joules(), self._start.get(self.primary))
        return None if used is None else used - self.test_j

    def totals(self) -> dict[str, float | None]:
        """This rank's numbers: ``energy`` (primary, whole span), ``train``, ``gpu``, ``cpu``."""
        now = self._read()
        by_device = {k: _delta(now[k], self._start.get(k)) for k in self.meters}
        return {
            "energy": by_device[self.primary],
            "train": self.train_j.get(self.primary),
            "gpu": by_device.get("gpu"),
            "cpu": by_device.get("cpu"),
        }

    def sources(self) -> dict[str, str]:
        return {k: m.source for k, m in self.meters.items()}

    def close(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()


def sample_hz(environ: dict[str, str] | None = None) -> float:
    """The power sampler's rate from ``TRAINBED_POWER_SAMPLE_HZ`` (default 10 Hz, 0 off)."""
    raw = (environ if environ is not None else os.environ).get(POWER_SAMPLE_HZ, "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_HZ
    except ValueError:
        return DEFAULT_HZ


def rank_ledger(device: str, local_rank: int, hz: float) -> EnergyLedger:
    """The ledger of a rank training on ``device``: its meters, and on a GPU the power sampler
    (started, paused until training begins) where NVML opens its GPUs."""
    cuda = device.startswith("cuda")
    ledger = EnergyLedger(device_meters(device, local_rank), "gpu" if cuda else "cpu")
    if not cuda:
        ledger.power_source = "none: the trial runs on CPU"
    elif hz <= 0:
        ledger.power_source = f"none: sampling off ({POWER_SAMPLE_HZ}=0)"
    else:
        try:
            ledger.sampler = PowerSampler(nvml_reader(rank_gpu_ids(device)), hz).start()
            ledger.power_source = f"nvml: {hz:g} Hz"
        except Exception as err:  # noqa: BLE001 - no NVML: no power, with the reason
            ledger.power_source = f"none: NVML unavailable ({type(err).__name__}: {err})"
    return ledger


def pack(values: Sequence[float | None]) -> list[float]:
    """(value or 0, 1 if missing) for each: what one all-reduce sums."""
    out: list[float] = []
    for value in values:
        out += [value or 0.0, float(value is None)]
    return out


def unpack(summed: Sequence[float]) -> list[float | None]:
    """The sums of :func:`pack`ed values: None where any rank's was missing."""
    return [None if summed[i + 1] else summed[i] for i in range(0, len(summed), 2)]
