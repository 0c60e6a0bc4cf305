"""Which GPUs each rank of a local trial gets: disjoint sets, or a refusal before the first trial.

Pure. A rank asks for ``resources.gpu`` devices; a trial of ``parallelism`` ranks needs their
product, and no two ranks share a device (two DDP ranks on one GPU under NCCL fail, and their
timings would disturb each other anyway). The executor hands each rank its devices by UUID in
``CUDA_VISIBLE_DEVICES`` (:func:`cuda_visible_devices`), so the rank sees them as ``cuda:0``...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trainbed.contract.errors import UserError
from trainbed.contract.trial import TrialSpec


@dataclass(frozen=True)
class GpuDevice:
    """One GPU of this host, as NVML numbers it."""

    index: int
    uuid: str
    model: str
    memory_bytes: int
    #: The power limit NVML allows to be set, watts (min, max); None where it cannot be read.
    power_range_w: tuple[float, float] | None = None
    #: The power limit in force now, and the board's default, watts.
    power_limit_w: float | None = None
    default_power_limit_w: float | None = None
    #: The SM clocks a lock may ask for, MHz (lowest supported, highest): None where unknown.
    clock_range_mhz: tuple[int, int] | None = None


def gpus_needed(trial: TrialSpec) -> int:
    """The devices one trial holds at once: every rank's ``resources.gpu``."""
    return trial.workload.parallelism * trial.resources.gpu


def assign_gpus(
    parallelism: int, per_rank: int, devices: Sequence[GpuDevice]
) -> list[tuple[GpuDevice, ...]]:
    """Rank r gets devices [r * per_rank, (r + 1) * per_rank) of the host's, in NVML order.

    Raises ValueError when the host has fewer than ``parallelism * per_rank`` (the caller has
    refused such a campaign before the first trial, so this is an invariant there).
    """
    need = parallelism * per_rank
    if need > len(devices):
        raise ValueError(f"{need} GPUs needed, {len(devices)} present")
    return [tuple(devices[r * per_rank : (r + 1) * per_rank]) for r in range(parallelism)]


def cuda_visible_devices(devices: Sequence[GpuDevice]) -> str:
    """``CUDA_VISIBLE_DEVICES`` for a rank: UUIDs, which do not depend on CUDA_DEVICE_ORDER."""
    return ",".join(d.uuid for d in devices)


def refuse_shortage(trials: Sequence[TrialSpec], devices: Sequence[GpuDevice], why: str) -> None:
    """Raise a one-line UserError naming the first trial that needs more GPUs than the host has
    (``why`` says why the host has none, where it has none)."""
    for trial in trials:
        need = gpus_needed(trial)
        if need > len(devices):
            have = f"{len(devices)}" + (f" ({why})" if not devices and why else "")
            raise UserError(
                f"trial {trial.trial_id}: {trial.workload.parallelism} rank(s) x resources.gpu "
                f"{trial.resources.gpu} need {need} GPU(s) of their own, but this host has {have}; "
                "lower workload.parallelism or resources.gpu, or run on a host with more GPUs"
            )
