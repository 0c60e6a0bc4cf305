"""This host's GPUs through NVML: the inventory, the refusals before the first trial, and the
power limit and clock changes of a trial, restored after it (the adapter).

:func:`local_gpus` runs before the first trial, as :func:`~.network_host.local_network` does: a
campaign whose trial needs more GPUs than the host has, or a power limit or clock outside a
device's range, or one this process may not set, is refused in one line (exit 2). During the
campaign :class:`GpuHost` tunes a trial's devices (:mod:`.gpu_tuning`'s plan) and restores them.
Before changing anything it writes the restore steps to the results directory
(``gpu-restore.json``), so a killed driver's next run restores them first
(:func:`restore_pending`). NVML comes from ``nvidia-ml-py`` (``pip install trainbed[gpu]``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import UserError
from trainbed.contract.records import RankGpu, atomic_write_text
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.local.gpu_assignment import (
    GpuDevice,
    assign_gpus,
    cuda_visible_devices,
    gpus_needed,
    refuse_shortage,
)
from trainbed.orchestrator.local.gpu_tuning import (
    Step,
    TuningPlan,
    TuningRefused,
    plan_tuning,
    read_back_record,
    wants_tuning,
)
from trainbed.orchestrator.plan.checks import gpu_tuning_fields


class Nvml:
    """The few NVML calls trainbed makes, by host index. Raises whatever NVML raises."""

    def __init__(self) -> None:
        import pynvml

        pynvml.nvmlInit()
        self.nvml = pynvml

    def _handle(self, index: int) -> Any:
        return self.nvml.nvmlDeviceGetHandleByIndex(index)

    def devices(self) -> list[GpuDevice]:
        nv = self.nvml
        found = []
        for index in range(nv.nvmlDeviceGetCount()):
            h = self._handle(index)
            found.append(
                GpuDevice(
                    index=index,
                    uuid=_text(nv.nvmlDeviceGetUUID(h)),
                    model=_text(nv.nvmlDeviceGetName(h)),
                    memory_bytes=int(nv.nvmlDeviceGetMemoryInfo(h).total),
                    power_range_w=_maybe(
                        lambda h=h: tuple(
                            v / 1000 for v in nv.nvmlDeviceGetPowerManagementLimitConstraints(h)
                        )
                    ),
                    power_limit_w=_maybe(lambda i=index: self.power_limit_w(i)),
                    default_power_limit_w=_maybe(
                        lambda h=h: nv.nvmlDeviceGetPowerManagementDefaultLimit(h) / 1000
                    ),
                    clock_range_mhz=_maybe(lambda h=h: self._clock_range(h)),
                )
            )
        return found

    def _clock_range(self, handle: Any) -> tuple[int, int]:
        nv = self.nvml
        clocks: set[int] = set()
        for memory in nv.nvmlDeviceGetSupportedMemoryClocks(handle):
            clocks.update(nv.nvmlDeviceGetSupportedGraphicsClocks(handle, memory))
        top = nv.nvmlDeviceGetMaxClockInfo(handle, nv.NVML_CLOCK_SM)
        return (min(clocks) if clocks else 0, max([top, *clocks]))

    def power_limit_w(self, index: int) -> float:
        return self.nvml.nvmlDeviceGetPowerManagementLimit(self._handle(index)) / 1000

    def set_power_limit_w(self, index: int, watts: float) -> None:
        self.nvml.nvmlDeviceSetPowerManagementLimit(self._handle(index), round(watts * 1000))

    def lock_clock_mhz(self, index: int, mhz: int) -> None:
        self.nvml.nvmlDeviceSetGpuLockedClocks(self._handle(index), mhz, mhz)

    def reset_clock(self, index: int) -> None:
        self.nvml.nvmlDeviceResetGpuLockedClocks(self._handle(index))

    def sm_clock_mhz(self, index: int) -> int:
        return int(self.nvml.nvmlDeviceGetClockInfo(self._handle(index), self.nvml.NVML_CLOCK_SM))

    def temperature_c(self, index: int) -> float:
        nv = self.nvml
        return float(nv.nvmlDeviceGetTemperature(self._handle(index), nv.NVML_TEMPERATURE_GPU))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _maybe(read: Any) -> Any:
    try:
        return read()
    except Exception:  # noqa: BLE001 - NVML's "not supported" and friends: unknown, not fatal
        return None


def open_nvml() -> tuple[Nvml | None, str]:
    """NVML, or None and why not (no nvidia-ml-py, no driver)."""
    try:
        return Nvml(), ""
    except ImportError:
        return None, "nvidia-ml-py is not installed (pip install 'trainbed[gpu]')"
    except Exception as err:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded...
        return None, f"NVML unavailable: {type(err).__name__}: {err}"


class GpuHost:
    """The campaign's GPUs: assignment per rank, tuning per trial, and its restore file."""

    def __init__(self, nvml: Nvml, devices: Sequence[GpuDevice], restore_file: Path) -> None:
        self.nvml = nvml
        self.devices = list(devices)
        self.restore_file = restore_file
        self.plans: dict[str, TuningPlan] = {}
        #: each device's temperature before the first trial: the idle one a cooldown waits for
        self.idle_c = dict(
            zip((d.index for d in devices), self.temperatures_c(devices), strict=True)
        )

    def assign(self, trial: TrialSpec) -> list[tuple[GpuDevice, ...]]:
        if trial.resources.gpu == 0:
            return []
        return assign_gpus(trial.workload.parallelism, trial.resources.gpu, self.devices)

    def tune(self, trial: TrialSpec, devices: Sequence[GpuDevice]) -> dict[str, Any]:
        """Set the trial's power limit and clock on its devices, read them back; the
        ``enforcement`` entries. The restore steps are on disk before the first change."""
        r = trial.resources
        if not wants_tuning(r):
            return {}
        current = [self._fresh(d) for d in devices]
        plan = plan_tuning(current, r.gpu_power_limit, r.gpu_clock)
        self.plans[trial.trial_id] = plan
        self._save()
        try:
            for step in plan.apply:
                self._do(step)
        except Exception as err:
            self.restore(trial.trial_id)
            raise UserError(
                f"trial {trial.trial_id}: setting the GPU failed ({type(err).__name__}: {err}); "
                "what was set is restored"
            ) from None
        power = {d.index: _maybe(lambda i=d.index: self.nvml.power_limit_w(i)) for d in devices}
        clock = {d.index: _maybe(lambda i=d.index: self.nvml.sm_clock_mhz(i)) for d in devices}
        return read_back_record(
            plan,
            power if plan.power_limit_w is not None else {},
            clock if plan.clock_mhz is not None else {},
        )

    def _fresh(self, device: GpuDevice) -> GpuDevice:
        """The device with its power limit read now (another tool may have changed it)."""
        now = _maybe(lambda: self.nvml.power_limit_w(device.index))
        return GpuDevice(**{**device.__dict__, "power_limit_w": now})

    def restore(self, trial_id: str) -> list[str]:
        """Undo a trial's changes; the errors met (every step is tried)."""
        plan = self.plans.pop(trial_id, None)
        errors = _undo(self.nvml, plan.restore) if plan else []
        self._save()
        return errors

    def restore_all(self) -> list[str]:
        errors = []
        for trial_id in list(self.plans):
            errors += self.restore(trial_id)
        return errors

    def _do(self, step: Step) -> None:
        _perform(self.nvml, step)

    def _save(self) -> None:
        if not self.plans:
            self.restore_file.unlink(missing_ok=True)
            return
        data = {tid: plan.to_json() for tid, plan in self.plans.items()}
        atomic_write_text(self.restore_file, json.dumps(data, indent=2) + "\n")

    def temperatures_c(self, devices: Sequence[GpuDevice]) -> list[float | None]:
        return [_maybe(lambda i=d.index: self.nvml.temperature_c(i)) for d in devices]

    def thermometer(
        self, devices: Sequence[GpuDevice]
    ) -> tuple[Callable[[], list[float | None]] | None, list[float | None]]:
        """A reader of these devices' temperatures and their idle ones, for a cooldown (no
        reader for a trial without GPUs: it waits the whole cooldown)."""
        if not devices:
            return None, []
        return (lambda: self.temperatures_c(devices)), [self.idle_c.get(d.index) for d in devices]


def _perform(nvml: Nvml, step: Step) -> None:
    if step.action == "set_power_limit":
        assert step.value is not None
        nvml.set_power_limit_w(step.index, step.value)
    elif step.action == "lock_clock":
        assert step.value is not None
        nvml.lock_clock_mhz(step.index, int(step.value))
    else:
        nvml.reset_clock(step.index)


def _undo(nvml: Nvml, steps: Sequence[Step]) -> list[str]:
    errors = []
    for step in steps:
        try:
            _perform(nvml, step)
        except Exception as err:  # noqa: BLE001 - try every step; report what failed
            errors.append(f"GPU {step.index} {step.action}: {type(err).__name__}: {err}")
    return errors


def rank_gpus(assignment: Sequence[Sequence[GpuDevice]]) -> list[RankGpu]:
    """``result.gpus``: each rank's devices."""
    return [
        RankGpu(rank=rank, index=d.index, uuid=d.uuid, model=d.model)
        for rank, devices in enumerate(assignment)
        for d in devices
    ]


def rank_gpu_env(devices: Sequence[GpuDevice]) -> dict[str, str]:
    """The rank's ``CUDA_VISIBLE_DEVICES`` (a rank without GPUs sees none: it trains on CPU)."""
    return {"CUDA_VISIBLE_DEVICES": cuda_visible_devices(devices)}


def restore_pending(restore_file: Path, opener: Any = None) -> list[str]:
    """Restore what a killed driver left set (``gpu-restore.json``), before anything else runs.
    Returns what was restored, one line per trial; raises UserError where it cannot."""
    if not restore_file.exists():
        return []
    data = json.loads(restore_file.read_text())
    nvml, why = (opener or open_nvml)()
    if nvml is None:
        raise UserError(
            f"{restore_file} lists GPU settings a killed run left changed, and they cannot be "
            f"restored here: {why}"
        )
    done, errors = [], []
    for trial_id, plan in data.items():
        steps = TuningPlan.from_json(plan).restore
        errors += _undo(nvml, steps)
        done.append(f"{trial_id}: " + ", ".join(f"GPU {s.index} {s.action}" for s in steps))
    if errors:
        raise UserError(f"restoring {restore_file} failed: {'; '.join(errors)}")
    restore_file.unlink()
    return done


def local_gpus(
    campaign: Campaign, trials: Sequence[TrialSpec], restore_file: Path, opener: Any = None
) -> GpuHost | None:
    """The campaign's GPU host, or None when no trial asks for a GPU. Refuses (UserError, one
    line) before the first trial: too few GPUs for a trial, tuning a trial without GPUs, a level
    outside a device's range, or tuning this process may not do."""
    tuning = gpu_tuning_fields(campaign)
    for trial in trials:
        if wants_tuning(trial.resources) and trial.resources.gpu == 0:
            where = ", ".join(f"{k} ({v})" for k, v in tuning.items())
            raise UserError(f"trial {trial.trial_id}: {where} set, but resources.gpu is 0")
    if not any(gpus_needed(t) for t in trials):
        return None
    nvml, why = (opener or open_nvml)()
    devices = nvml.devices() if nvml is not None else []
    refuse_shortage(trials, devices, why)
    assert nvml is not None
    host = GpuHost(nvml, devices, restore_file)
    for trial in trials:
        if not wants_tuning(trial.resources):
            continue
        for ranks in host.assign(trial):
            try:
                plan_tuning(ranks, trial.resources.gpu_power_limit, trial.resources.gpu_clock)
            except TuningRefused as err:
                raise UserError(f"trial {trial.trial_id}: {err}") from None
    _refuse_without_permission(host, trials)
    return host


def _refuse_without_permission(host: GpuHost, trials: Sequence[TrialSpec]) -> None:
    """Setting a power limit is probed by writing each device's current limit back (no change);
    locking clocks needs root, which NVML offers no probe for short of a change."""
    power = any(t.resources.gpu_power_limit is not None for t in trials)
    clock = any(t.resources.gpu_clock is not None for t in trials)
    if clock and os.geteuid() != 0:
        raise UserError(
            "resources.gpu_clock: locking GPU clocks needs root (NVML's "
            "nvmlDeviceSetGpuLockedClocks); run as root, or drop the factor"
        )
    if power:
        for device in host.devices:
            try:
                current = host.nvml.power_limit_w(device.index)
                host.nvml.set_power_limit_w(device.index, current)
            except Exception as err:  # noqa: BLE001 - NVMLError_NoPermission, NotSupported
                raise UserError(
                    f"resources.gpu_power_limit: GPU {device.index} ({device.model}) refuses a "
                    f"power limit from this process ({type(err).__name__}); run as root, or "
                    "drop the factor"
                ) from None
