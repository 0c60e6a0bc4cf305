"""A trial's GPU power limit and locked SM clock: the plan to set, read back and restore them.

Pure: from the devices' state (:class:`~trainbed.orchestrator.local.gpu_assignment.GpuDevice`)
and the trial's levels (``resources.gpu_power_limit`` in W, ``resources.gpu_clock`` in MHz) to
the steps an adapter (:mod:`trainbed.orchestrator.local.gpu_host`) performs. A level outside a
device's allowed range is refused here, naming the range, before anything is changed. The
restore steps are those the apply steps undo, and nothing else: a power limit goes back to the
value it had, a clock lock is reset (NVML has no getter for a lock already in force, so a lock
that someone set before trainbed is reset too: :func:`plan_tuning` says so in ``notes``).
The plan is JSON, so it can be written to the results directory before the first change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from trainbed.contract.trial import Resources
from trainbed.orchestrator.local.gpu_assignment import GpuDevice

Action = Literal["set_power_limit", "lock_clock", "reset_clock"]

#: A power limit read back within this many watts of the target counts as enforced (NVML works
#: in milliwatts; boards round to their own step).
POWER_TOLERANCE_W = 1.0


class TuningRefused(ValueError):
    """A level this device cannot take; the message names the range."""


@dataclass(frozen=True)
class Step:
    """One change to one device: a power limit in W, a clock lock in MHz, or a clock reset."""

    action: Action
    index: int
    uuid: str
    value: float | None = None


@dataclass(frozen=True)
class TuningPlan:
    """What to change before a trial, and how to undo it after."""

    apply: tuple[Step, ...] = ()
    restore: tuple[Step, ...] = ()
    power_limit_w: float | None = None
    clock_mhz: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.apply

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> TuningPlan:
        return TuningPlan(
            apply=tuple(Step(**s) for s in data.get("apply", [])),
            restore=tuple(Step(**s) for s in data.get("restore", [])),
            power_limit_w=data.get("power_limit_w"),
            clock_mhz=data.get("clock_mhz"),
            notes=tuple(data.get("notes", [])),
        )


def wants_tuning(resources: Resources) -> bool:
    return resources.gpu_power_limit is not None or resources.gpu_clock is not None


def range_problem(device: GpuDevice, power_w: float | None, clock_mhz: int | None) -> str | None:
    """Why a level is outside what this device allows (naming the range), or None."""
    if power_w is not None:
        if device.power_range_w is None:
            return f"GPU {device.index} ({device.model}) reports no settable power limit range"
        low, high = device.power_range_w
        if not low <= power_w <= high:
            return (
                f"resources.gpu_power_limit {power_w:g} W is outside GPU {device.index} "
                f"({device.model})'s allowed range {low:g}-{high:g} W"
            )
    if clock_mhz is not None:
        if device.clock_range_mhz is None:
            return f"GPU {device.index} ({device.model}) reports no supported SM clocks"
        low, high = device.clock_range_mhz
        if not low <= clock_mhz <= high:
            return (
                f"resources.gpu_clock {clock_mhz} MHz is outside GPU {device.index} "
                f"({device.model})'s supported SM clocks {low}-{high} MHz"
            )
    return None


def plan_tuning(
    devices: Sequence[GpuDevice], power_w: float | None, clock_mhz: int | None
) -> TuningPlan:
    """The steps that set ``power_w`` and lock ``clock_mhz`` on ``devices``, and undo them.

    Raises :class:`TuningRefused` for a level outside a device's range. A power limit already
    at its target is still set (and read back) but has nothing to restore beyond its value.
    """
    if power_w is None and clock_mhz is None:
        return TuningPlan()
    apply: list[Step] = []
    restore: list[Step] = []
    notes: list[str] = []
    for device in devices:
        problem = range_problem(device, power_w, clock_mhz)
        if problem:
            raise TuningRefused(problem)
        if power_w is not None:
            if device.power_limit_w is None:
                raise TuningRefused(
                    f"GPU {device.index} ({device.model}): its power limit cannot be read, so "
                    "it could not be restored"
                )
            apply.append(Step("set_power_limit", device.index, device.uuid, float(power_w)))
            restore.append(Step("set_power_limit", device.index, device.uuid, device.power_limit_w))
        if clock_mhz is not None:
            apply.append(Step("lock_clock", device.index, device.uuid, float(clock_mhz)))
            restore.append(Step("reset_clock", device.index, device.uuid))
    if clock_mhz is not None:
        notes.append("the clock is restored by a reset to the driver's default (unlocked)")
    # undo in reverse order, so a device's last change is undone first
    return TuningPlan(
        apply=tuple(apply),
        restore=tuple(reversed(restore)),
        power_limit_w=None if power_w is None else float(power_w),
        clock_mhz=clock_mhz,
        notes=tuple(notes),
    )


def read_back_record(
    plan: TuningPlan, power_read_w: dict[int, float | None], clock_read_mhz: dict[int, int | None]
) -> dict[str, Any]:
    """The ``enforcement`` entries of a tuned trial: what was asked, what each device read back,
    and whether the power limit holds on every device. The clock read at idle may be below a
    lock (the lock bounds the clock; an idle GPU drops below it), so it is recorded, not judged:
    ``result.power`` holds the SM clock sampled during training."""
    record: dict[str, Any] = {"gpu_tuned_by": "nvml"}
    if plan.power_limit_w is not None:
        read = [power_read_w.get(i) for i in sorted(power_read_w)]
        record["gpu_power_limit_target_w"] = plan.power_limit_w
        record["gpu_power_limit_w"] = read[0] if len(set(read)) == 1 else read
        record["gpu_power_limit_confirmed"] = all(
            r is not None and abs(r - plan.power_limit_w) <= POWER_TOLERANCE_W for r in read
        )
    if plan.clock_mhz is not None:
        read_clock = [clock_read_mhz.get(i) for i in sorted(clock_read_mhz)]
        record["gpu_clock_target_mhz"] = plan.clock_mhz
        record["gpu_clock_mhz"] = read_clock[0] if len(set(read_clock)) == 1 else read_clock
    if plan.notes:
        record["gpu_tuning_notes"] = list(plan.notes)
    return record
