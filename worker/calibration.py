"""The worker's half of the noise guard: a calibration microbenchmark and a look at the host.

Each rank calls :meth:`NoiseProbe.start` before its trial and :meth:`NoiseProbe.finish` after
it, outside the trial's timed interval (``wall_time_s`` starts when the ``Trainer`` is created),
so the guard never changes the responses it guards. The calibration runs in the rank's own
process, so under its cgroup, CPU quota, affinity and thread count: a rank that shares its cores
with a busy neighbour, or whose host is throttled, calibrates slower than its peers of the same
limit, and the analysis (``trainbed.analysis.models.noise``) flags it. The host samples are cheap
reads
(``os.getloadavg``, ``/proc/stat``, the process's CPU time); the arithmetic between two of them
is :func:`trainbed.contract.noise.over_interval`. On a GPU trial the probe also times a fixed
kernel on the rank's GPU and asks NVML about it (:mod:`~trainbed.worker.gpu_calibration`).
"""

from __future__ import annotations

import os
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from trainbed.contract.env import NODE_NAME
from trainbed.contract.gpu import gpu_noise_flags
from trainbed.contract.noise import (
    CPU_COUNTERS,
    Calibration,
    HostSample,
    RankNoise,
    over_interval,
)

#: The calibration's fixed work: REPEATS timed repeats of LOOPS products of two SIZE x SIZE
#: float32 matrices, after WARMUP untimed ones. About 0.15 s a repeat on one unthrottled core of
#: the development machine, so under a second in all; twice that at a 500m limit (and as many
#: times longer as the machine is busy: a fixed amount of work).
SIZE = 256
LOOPS = 192
REPEATS = 5
WARMUP = 16


def calibrate(*, size: int = SIZE, loops: int = LOOPS, repeats: int = REPEATS) -> Calibration:
    """Time the fixed matrix multiply ``repeats`` times; the median repeat is the number."""
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator)
    b = torch.rand(size, size, generator=generator)
    out = torch.empty(size, size)
    for _ in range(WARMUP):  # thread pool, caches
        torch.mm(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(loops):
            torch.mm(a, b, out=out)
        times.append(time.perf_counter() - start)
    return Calibration(
        seconds=statistics.median(times),
        repeats=times,
        threads=torch.get_num_threads(),
        work=f"{loops} x matmul {size}x{size} float32",
    )


def read_proc_stat(path: Path = Path("/proc/stat")) -> tuple[dict[str, int], int | None]:
    """The aggregate ``cpu`` counters and the number of ``cpuN`` lines; ``({}, None)`` where
    the file cannot be read (not Linux)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}, None
    counters: dict[str, int] = {}
    cpus = 0
    for line in lines:
        if line.startswith("cpu "):
            values = [int(v) for v in line.split()[1 : 1 + len(CPU_COUNTERS)]]
            counters = dict(zip(CPU_COUNTERS, values, strict=False))
        elif line.startswith("cpu") and line[3:4].isdigit():
            cpus += 1
    return counters, cpus or None


def read_run_delay(path: Path = Path("/proc/self/schedstat")) -> float | None:
    """The main thread's cumulative run-queue delay, seconds (the second field, ns)."""
    try:
        return int(path.read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return None


def _cpu_stat_path(cgroup_file: Path = Path("/proc/self/cgroup")) -> Path | None:
    """This process's cgroup ``cpu.stat``: v2's unified file, else v1's ``cpu`` hierarchy."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "cpu" in controllers.split(","):
            for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
                candidate = root / mount / path.lstrip("/") / "cpu.stat"
                if candidate.exists():
                    return candidate
    for line in lines:
        if line.startswith("0::"):
            candidate = root / line[3:].lstrip("/") / "cpu.stat"
            if candidate.exists():
                return candidate
    return None


def read_throttled(path: Path | None) -> float | None:
    """Cumulative time the cgroup was throttled by its CPU quota, seconds (v1
    ``throttled_time`` ns, v2 ``throttled_usec``); None where there is no such file."""
    if path is None:
        return None
    try:
        fields = dict(line.split()[:2] for line in path.read_text().splitlines() if " " in line)
    except (OSError, ValueError):
        return None
    if "throttled_usec" in fields:
        return int(fields["throttled_usec"]) / 1e6
    if "throttled_time" in fields:
        return int(fields["throttled_time"]) / 1e9
    return None


def host_sample() -> HostSample:
    """A look at the host now: load averages, /proc/stat counters, this process's CPU time."""
    counters, cpus = read_proc_stat()
    try:
        loadavg = [round(v, 3) for v in os.getloadavg()]
    except OSError:
        loadavg = []
    return HostSample(
        time=time.time(),
        loadavg=loadavg,
        cpu=counters,
        cpus=cpus,
        process_cpu_s=time.process_time(),
        run_delay_s=read_run_delay(),
        throttled_s=read_throttled(_cpu_stat_path()),
    )


@dataclass
class NoiseProbe:
    """One rank's noise record in the making: the host and a calibration, before and after."""

    rank: int
    cpu_limit: float | None
    before: HostSample | None = None
    calibration_before: Calibration | None = None
    notes: list[str] = field(default_factory=list)
    #: the rank's first GPU (``cuda:N``) and its NVML identifier, on a GPU trial
    gpu: str | None = None
    nvml_id: str | int | None = None
    gpu_before: Calibration | None = None
    gpu_reasons: set[str] = field(default_factory=set)
    gpu_others: int | None = None

    @classmethod
    def start(cls, rank: int, cpu_limit: float | None, gpu: str | None = None) -> NoiseProbe:
        """Sample the host, then calibrate (so the interval covers the calibration too); on a
        GPU trial (``gpu`` is ``cuda:N``), the GPU's kernel too."""
        probe = cls(rank=rank, cpu_limit=cpu_limit, before=host_sample(), gpu=gpu)
        probe.calibration_before = probe._calibrate("before")
        if gpu is not None:
            from trainbed.worker.energy import rank_gpu_ids

            ids = rank_gpu_ids(gpu)
            probe.nvml_id = ids[0] if ids else None
            probe.gpu_before = probe._calibrate_gpu("before")
        return probe

    def _calibrate_gpu(self, when: str) -> Calibration | None:
        from trainbed.worker.gpu_calibration import calibrate_gpu, look

        assert self.gpu is not None
        try:
            found = calibrate_gpu(self.gpu)
        except Exception as err:  # noqa: BLE001 - the guard never fails a trial
            self.notes.append(f"GPU calibration {when} failed: {type(err).__name__}: {err}")
            return None
        seen = look(self.nvml_id)
        self.gpu_reasons.update(seen.throttle_reasons)
        if seen.other_processes is not None:
            self.gpu_others = max(self.gpu_others or 0, seen.other_processes)
        return found.model_copy(
            update={"sm_clock_mhz": seen.sm_clock_mhz, "temperature_c": seen.temperature_c}
        )

    def _calibrate(self, when: str) -> Calibration | None:
        try:
            found = calibrate()
        except Exception as err:  # noqa: BLE001 - the guard never fails a trial
            self.notes.append(f"calibration {when} failed: {type(err).__name__}: {err}")
            return None
        return found.model_copy(update={"cpu_limit": self.cpu_limit})

    def finish(self, *, calibrate_after: bool = True) -> RankNoise:
        """Calibrate again (unless the trial did not succeed: then it should exit promptly),
        sample the host, and return the record."""
        after_calibration = gpu_after = None
        if calibrate_after:
            after_calibration = self._calibrate("after")
            if self.gpu is not None:
                gpu_after = self._calibrate_gpu("after")
        else:
            self.notes.append("no calibration after: the trial did not succeed")
        after = host_sample()
        derived = over_interval(self.before, after) if self.before is not None else {}
        return RankNoise(
            rank=self.rank,
            host=socket.gethostname(),
            node=os.environ.get(NODE_NAME) or None,
            calibration_before=self.calibration_before,
            calibration_after=after_calibration,
            before=self.before,
            after=after,
            note="; ".join(self.notes),
            gpu_calibration_before=self.gpu_before,
            gpu_calibration_after=gpu_after,
            gpu_throttle_reasons=sorted(self.gpu_reasons),
            gpu_other_processes=self.gpu_others,
            gpu_flags=gpu_noise_flags(
                self.gpu_before.seconds if self.gpu_before else None,
                gpu_after.seconds if gpu_after else None,
                sorted(self.gpu_reasons),
                self.gpu_others,
            )
            if self.gpu is not None
            else [],
            **derived,
        )


def gather_records(record: RankNoise, distributed: bool) -> list[RankNoise]:
    """Every rank's record on every rank (one ``all_gather_object`` over the trial's own
    process group, after training); this rank's alone when the group is gone or not there."""
    if not distributed:
        return [record]
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [record]
    gathered: list[object] = [None] * dist.get_world_size()
    try:
        dist.all_gather_object(gathered, record.model_dump(mode="json"))
    except Exception as err:  # noqa: BLE001 - a lost peer costs its record, not the result
        note = f"gathering the other ranks' records failed: {type(err).__name__}"
        return [record.model_copy(update={"note": "; ".join(p for p in (record.note, note) if p)})]
    return sorted(
        (RankNoise.model_validate(item) for item in gathered if item is not None),
        key=lambda r: r.rank,
    )
