"""GPU power sampled during the training epochs: a thread at a fixed rate, and a pure summary.

Energy counters give joules; a power-limit study also needs how the GPU got there: its mean and
peak power, utilisation, memory, SM clock, and whether it was throttled (power cap, heat). A
daemon thread reads them through NVML every ``1 / hz`` seconds while the trainer says training
is on (:attr:`PowerSampler.active`; validation and test passes are not sampled), and keeps the
readings in a list; nothing is summarised or written in the hot loop. :func:`summarise_power`
and :func:`combine_power` (the ranks' summaries into one) are pure and tested with a fake reader.
The thread costs one wake-up per period and a few NVML calls, which release the GIL
(``benchmarks/worker_overhead.py --sampling`` measures it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from trainbed.contract.gpu import throttle_names
from trainbed.contract.records import PowerSummary

#: Samples per second while training (the power rules ask for at least 1 Hz).
DEFAULT_HZ = 10.0


@dataclass(frozen=True)
class PowerSample:
    """One GPU at one moment; a field is None where NVML could not read it."""

    power_w: float | None = None
    utilization_pct: float | None = None
    memory_used_bytes: int | None = None
    throttle_mask: int | None = None
    sm_clock_mhz: int | None = None


Reader = Callable[[], list[PowerSample]]


class PowerSampler:
    """Calls ``read`` (one sample per GPU) every ``1 / hz`` s while :attr:`active` is set."""

    def __init__(self, read: Reader, hz: float = DEFAULT_HZ) -> None:
        assert hz > 0
        self.read = read
        self.hz = hz
        self.samples: list[PowerSample] = []
        self.gpus = 0
        self.errors: list[str] = []
        self.active_s = 0.0
        #: the sampler thread's own CPU time, seconds: its direct cost, whatever the machine's noise
        self.cpu_s = 0.0
        self._active_since: float | None = None
        self._active = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="power-sampler", daemon=True)

    def start(self) -> PowerSampler:
        self._thread.start()
        return self

    def resume(self) -> None:
        """Training starts (an epoch): sample."""
        self._active_since = time.perf_counter()
        self._active.set()

    def pause(self) -> None:
        """Training stops (validation, test, the end): stop sampling."""
        self._active.clear()
        if self._active_since is not None:
            self.active_s += time.perf_counter() - self._active_since
            self._active_since = None

    def stop(self) -> None:
        self.pause()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        period = 1.0 / self.hz
        while not self._stop.wait(period):
            if not self._active.is_set():
                self._active.wait(period)
                continue
            began = time.thread_time()
            try:
                found = self.read()
            except Exception as err:  # noqa: BLE001 - a failed read is a missing sample
                if len(self.errors) < 5:
                    self.errors.append(f"{type(err).__name__}: {err}")
                found = []
            self.gpus = max(self.gpus, len(found))
            self.samples.extend(found)
            self.cpu_s += time.thread_time() - began

    def summary(self) -> PowerSummary | None:
        return summarise_power(self.samples, self.active_s, max(self.gpus, 1))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise_power(
    samples: Sequence[PowerSample], active_s: float, gpus: int = 1
) -> PowerSummary | None:
    """The summary of one rank's samples: None when there are none. Power, utilisation and SM
    clock are per GPU (a mean over every sample of every GPU); ``sample_hz`` is the rate each
    GPU was achieved at over the time training was sampled."""
    if not samples:
        return None
    power = [s.power_w for s in samples if s.power_w is not None]
    util = [s.utilization_pct for s in samples if s.utilization_pct is not None]
    memory = [s.memory_used_bytes for s in samples if s.memory_used_bytes is not None]
    clocks = [s.sm_clock_mhz for s in samples if s.sm_clock_mhz is not None]
    mask = 0
    for s in samples:
        mask |= s.throttle_mask or 0
    extra: dict[str, Any] = {"gpus": gpus, "sampled_s": round(active_s, 3)}
    if clocks:
        extra["sm_clock_mean_mhz"] = sum(clocks) / len(clocks)
        extra["sm_clock_max_mhz"] = max(clocks)
    return PowerSummary(
        sample_hz=len(samples) / gpus / active_s if active_s > 0 else 0.0,
        samples=len(samples),
        mean_w=_mean(power),
        peak_w=max(power) if power else None,
        utilization_mean_pct=_mean(util),
        memory_used_max_bytes=max(memory) if memory else None,
        throttle_reasons=throttle_names(mask),
        **extra,
    )


def combine_power(summaries: Sequence[PowerSummary | None]) -> PowerSummary | None:
    """The ranks' summaries as one (all the trial's GPUs together): means weighted by samples,
    peaks and memory the highest, throttle reasons the union, the rate the lowest. None when
    no rank sampled."""
    got = [s for s in summaries if s is not None and s.samples]
    if not got:
        return None
    total = sum(s.samples for s in got)

    def weighted(key: str) -> float | None:
        pairs = [(getattr(s, key, None), s.samples) for s in got]
        pairs = [(v, n) for v, n in pairs if v is not None]
        weight = sum(n for _, n in pairs)
        return sum(v * n for v, n in pairs) / weight if weight else None

    def highest(key: str) -> Any:
        values = [v for s in got if (v := getattr(s, key, None)) is not None]
        return max(values) if values else None

    reasons = sorted({r for s in got for r in s.throttle_reasons})
    extra: dict[str, Any] = {"gpus": sum(getattr(s, "gpus", 1) or 1 for s in got)}
    if (clock := weighted("sm_clock_mean_mhz")) is not None:
        extra["sm_clock_mean_mhz"] = clock
        extra["sm_clock_max_mhz"] = highest("sm_clock_max_mhz")
    return PowerSummary(
        sample_hz=min(s.sample_hz for s in got),
        samples=total,
        mean_w=weighted("mean_w"),
        peak_w=highest("peak_w"),
        utilization_mean_pct=weighted("utilization_mean_pct"),
        memory_used_max_bytes=highest("memory_used_max_bytes"),
        throttle_reasons=reasons,
        **extra,
    )


def nvml_reader(ids: Sequence[str | int]) -> Reader:
    """A reader of these GPUs through NVML (raises where NVML cannot open them)."""
    import pynvml

    from trainbed.worker.energy import nvml_handle

    pynvml.nvmlInit()
    handles = [nvml_handle(pynvml, i) for i in ids]
    if not handles:
        raise ValueError("no NVML device for this rank's CUDA device")

    def field(call: Callable[[], Any]) -> Any:
        try:
            return call()
        except pynvml.NVMLError:
            return None

    def read() -> list[PowerSample]:
        out = []
        for h in handles:
            util = field(lambda h=h: pynvml.nvmlDeviceGetUtilizationRates(h))
            memory = field(lambda h=h: pynvml.nvmlDeviceGetMemoryInfo(h))
            power = field(lambda h=h: pynvml.nvmlDeviceGetPowerUsage(h))
            out.append(
                PowerSample(
                    power_w=None if power is None else power / 1000.0,
                    utilization_pct=None if util is None else float(util.gpu),
                    memory_used_bytes=None if memory is None else int(memory.used),
                    throttle_mask=field(
                        lambda h=h: pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h)
                    ),
                    sm_clock_mhz=field(
                        lambda h=h: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)
                    ),
                )
            )
        return out

    return read
