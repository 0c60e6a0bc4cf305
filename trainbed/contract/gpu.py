"""GPU names the parts agree on (contract): NVML's clock throttle reasons, which of them mean
noise, and how a rank finds its GPUs in NVML from ``CUDA_VISIBLE_DEVICES``.

The local executor gives each rank its own GPUs by UUID in ``CUDA_VISIBLE_DEVICES``, so the rank
sees them as ``cuda:0``, ``cuda:1``...; NVML ignores that variable and numbers every GPU of the
host, so the worker's meters and power sampler open the same UUIDs through
:func:`nvml_device_ids`. Pure.
"""

from __future__ import annotations

#: NVML's ``nvmlClocksThrottleReason*`` bits (nvml.h), named as ``PowerSummary.throttle_reasons``
#: and the noise guard record them.
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}

#: Throttle reasons that make a trial's GPU slower than its levels say: heat and the board's own
#: slowdowns. ``sw_power_cap`` is not among them: under a ``gpu_power_limit`` it is the treatment,
#: and ``applications_clocks_setting`` is a ``gpu_clock`` lock at work.
NOISY_THROTTLE: frozenset[str] = frozenset(
    {"hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)

#: The noise guard flags a GPU whose calibration after the trial took this much longer than
#: before it (a fixed kernel: only clocks or a neighbour can slow it).
GPU_SLOWDOWN_FLAG = 1.15


def throttle_names(mask: int) -> list[str]:
    """The names of the bits set in an NVML throttle-reason mask, in bit order; an unknown bit
    is named by its value, never dropped."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    known = sum(THROTTLE_REASONS)
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"0x{bit:x}")
            rest &= ~bit
        bit <<= 1
    return names


def nvml_device_ids(cuda_visible: str | None, cuda_indices: list[int]) -> list[str | int]:
    """NVML identifiers (a UUID string, or a host index) of the CUDA devices ``cuda_indices``.

    ``CUDA_VISIBLE_DEVICES`` as the executor writes it holds UUIDs (``GPU-...``), which NVML opens
    as they are; host indices are mapped through it; unset or empty (a pod, where the device plugin
    shows the container only its own GPUs), a CUDA index is the NVML index. ``MIG-`` entries and
    anything unparsable give no identifier: better no meter than another GPU's.
    """
    entries = [e.strip() for e in (cuda_visible or "").split(",") if e.strip()]
    if not entries:
        return list(cuda_indices)
    out: list[str | int] = []
    for index in cuda_indices:
        if index >= len(entries):
            continue
        entry = entries[index]
        if entry.startswith("GPU-"):
            out.append(entry)
        elif entry.isdigit():
            out.append(int(entry))
    return out


def rank_cuda_index(local_rank: int, per_rank: int, visible: int) -> int:
    """The first CUDA index of a rank's GPUs: 0 where the rank sees only its own (the local
    executor's ``CUDA_VISIBLE_DEVICES``, a pod's device plugin), else ``local_rank * per_rank``
    (torchrun on a host whose GPUs every rank sees)."""
    if visible <= max(per_rank, 1):
        return 0
    return local_rank * max(per_rank, 1)


def gpu_noise_flags(
    before_s: float | None,
    after_s: float | None,
    throttle_reasons: list[str],
    other_processes: int | None,
) -> list[str]:
    """Why a rank's GPU should not be trusted: slower calibration after the trial than before,
    a thermal or hardware slowdown seen, or other processes on the GPU. Empty: nothing seen."""
    flags = []
    if before_s and after_s and after_s / before_s > GPU_SLOWDOWN_FLAG:
        flags.append(f"calibration {after_s / before_s:.2f}x slower after the trial")
    noisy = sorted(set(throttle_reasons) & NOISY_THROTTLE)
    if noisy:
        flags.append("throttled: " + ", ".join(noisy))
    if other_processes:
        flags.append(f"shared: {other_processes} other process(es) on the GPU")
    return flags
