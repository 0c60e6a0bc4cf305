"""The noise guard's records in ``result.json`` (contract): what the host was doing around a trial.

A testbed's numbers are only as good as the machine was quiet. Each rank measures, before and
after its trial, a short calibration microbenchmark under the trial's own CPU limit and a sample
of its host (load average, ``/proc/stat`` counters, its own CPU time); the executor adds what
only it knows (the other trials that ran at once, the load average sampled during the trial).
The worker writes :class:`RankNoise` records, the local executor :class:`LoadSamples` and the
concurrent trial IDs, and the analysis (``trainbed.analysis.models.noise``) reads them to flag the
trials whose numbers should not be trusted. The pure arithmetic on two host samples lives here
too, so the worker and a test share one definition of "steal %" and "other load".
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

#: The ``/proc/stat`` ``cpu`` line's first eight counters, in the kernel's order (jiffies).
CPU_COUNTERS: tuple[str, ...] = (
    "user",
    "nice",
    "system",
    "idle",
    "iowait",
    "irq",
    "softirq",
    "steal",
)


class _Record(BaseModel):
    model_config = ConfigDict(extra="allow")


class Calibration(_Record):
    """A fixed matrix-multiply workload timed a few times in the rank's own process, so under
    the trial's CPU limit, thread count and cgroup: its time moves with what the trial got."""

    #: The median time of one repeat, seconds: the number the analysis compares.
    seconds: float
    #: Every repeat's time, seconds (the warm-up excluded).
    repeats: list[float] = Field(default_factory=list)
    #: torch's intra-op threads during the calibration (the trial's own).
    threads: int | None = None
    #: The trial's CPU limit in cores (``resources.cpu``): calibrations compare within a limit.
    cpu_limit: float | None = None
    #: What was timed, e.g. ``"192 x matmul 256x256 float32"``.
    work: str = ""


class HostSample(_Record):
    """One look at the rank's host: cheap reads only, no work of its own."""

    #: Seconds since the epoch.
    time: float
    #: ``os.getloadavg()``: 1, 5 and 15 minute load averages of the host (a pod sees its node's).
    loadavg: list[float] = Field(default_factory=list)
    #: The aggregate ``cpu`` line of ``/proc/stat`` (jiffies), keyed by :data:`CPU_COUNTERS`;
    #: empty where it cannot be read.
    cpu: dict[str, int] = Field(default_factory=dict)
    #: CPUs counted in ``/proc/stat`` (``cpuN`` lines): the host's, not the rank's limit.
    cpus: int | None = None
    #: This process's CPU time (user + system, all threads), seconds.
    process_cpu_s: float | None = None
    #: The main thread's time runnable but waiting for a CPU (``/proc/self/schedstat``), and
    #: its cgroup's time throttled by the CPU quota (``cpu.stat``), seconds, cumulative.
    run_delay_s: float | None = None
    throttled_s: float | None = None


class RankNoise(_Record):
    """One rank's noise record: where it ran, its calibrations, and its host over the trial."""

    rank: int
    #: The host name the rank saw (a pod's own name in Kubernetes).
    host: str | None = None
    #: The Kubernetes node (downward API ``spec.nodeName``); null outside a cluster.
    node: str | None = None
    calibration_before: Calibration | None = None
    calibration_after: Calibration | None = None
    before: HostSample | None = None
    after: HostSample | None = None
    #: Over the trial (``before`` to ``after``): the host's CPU time stolen by a hypervisor and
    #: spent waiting for I/O, as % of all CPU time; null where /proc/stat was unreadable.
    steal_pct: float | None = None
    iowait_pct: float | None = None
    #: Over the trial: busy cores of the whole host, and of this rank's process alone.
    host_busy_cores: float | None = None
    own_busy_cores: float | None = None
    #: Over the trial: % of the wall time the rank's main thread was ready to run but other
    #: work held its CPU (its run-queue delay less its quota's throttling): contention felt.
    cpu_wait_pct: float | None = None
    #: On a GPU trial: a fixed matrix multiply on the rank's first GPU, timed with CUDA events,
    #: before and after the trial (extra keys ``sm_clock_mhz``, ``temperature_c``); null on CPU.
    gpu_calibration_before: Calibration | None = None
    gpu_calibration_after: Calibration | None = None
    #: NVML throttle reasons seen at either GPU calibration, and the most processes other than
    #: this rank's that held the GPU then (null where NVML could not say).
    gpu_throttle_reasons: list[str] = Field(default_factory=list)
    gpu_other_processes: int | None = None
    #: Why this rank's GPU should not be trusted (:func:`trainbed.contract.gpu.gpu_noise_flags`):
    #: slower after than before, thermally throttled, or shared. Empty: nothing seen.
    gpu_flags: list[str] = Field(default_factory=list)
    #: Why a part is missing (e.g. the after-calibration is skipped when the trial failed).
    note: str = ""


class LoadSamples(_Record):
    """The executor's view of the host while the trial ran: the 1-minute load average, read at
    every poll (every 0.25 s locally). Null in Kubernetes, where the executor is not on the
    node."""

    mean: float
    max: float
    samples: int


def over_interval(before: HostSample, after: HostSample) -> dict[str, float | None]:
    """Steal %, iowait %, host busy cores, own busy cores and CPU wait % between two samples.

    Busy is everything but ``idle`` and ``iowait``. A pod reads its node's ``/proc/stat``
    (it is not namespaced), so "host" is the node there. CPU wait is the main thread's run-queue
    delay less the quota's throttling (a throttled thread waits too, but by its own limit).
    """
    out: dict[str, float | None] = {
        "steal_pct": None,
        "iowait_pct": None,
        "host_busy_cores": None,
        "own_busy_cores": None,
        "cpu_wait_pct": None,
    }
    elapsed = after.time - before.time
    if before.process_cpu_s is not None and after.process_cpu_s is not None and elapsed > 0:
        out["own_busy_cores"] = max(0.0, after.process_cpu_s - before.process_cpu_s) / elapsed
    if before.run_delay_s is not None and after.run_delay_s is not None and elapsed > 0:
        waited = after.run_delay_s - before.run_delay_s
        if before.throttled_s is not None and after.throttled_s is not None:
            waited -= after.throttled_s - before.throttled_s
        out["cpu_wait_pct"] = 100.0 * max(0.0, waited) / elapsed
    if not before.cpu or not after.cpu:
        return out
    delta = {k: after.cpu.get(k, 0) - before.cpu.get(k, 0) for k in CPU_COUNTERS}
    total = sum(delta.values())
    if total <= 0:
        return out
    out["steal_pct"] = 100.0 * delta["steal"] / total
    out["iowait_pct"] = 100.0 * delta["iowait"] / total
    cpus = after.cpus or before.cpus
    if cpus:
        busy = total - delta["idle"] - delta["iowait"]
        out["host_busy_cores"] = cpus * busy / total
    return out
