"""The GPU names of the contract, and the cooldown before a trial (pure, with a fake clock)."""

from __future__ import annotations

import pytest

from trainbed.contract.gpu import (
    gpu_noise_flags,
    nvml_device_ids,
    rank_cuda_index,
    throttle_names,
)
from trainbed.orchestrator.local.cooldown import cooled, wait_cooldown


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("mask", "names"),
    [
        (0, []),
        (0x1, ["gpu_idle"]),
        (0x4 | 0x40, ["sw_power_cap", "hw_thermal_slowdown"]),
        (0x4 | 0x1000, ["sw_power_cap", "0x1000"]),  # an unknown bit is named, not dropped
    ],
)
def test_throttle_names(mask: int, names: list[str]) -> None:
    assert throttle_names(mask) == names


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("visible", "indices", "ids"),
    [
        (None, [0], [0]),  # a pod: the device plugin shows only its GPUs
        ("", [1], [1]),
        ("GPU-aa,GPU-bb", [1], ["GPU-bb"]),  # the local executor's UUIDs
        ("3,5", [0, 1], [3, 5]),  # host indices
        ("MIG-x", [0], []),  # no meter rather than another GPU's
        ("GPU-aa", [2], []),
    ],
)
def test_nvml_device_ids(visible: str | None, indices: list[int], ids: list) -> None:
    assert nvml_device_ids(visible, indices) == ids


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("local_rank", "per_rank", "visible", "index"),
    [(1, 1, 1, 0), (1, 2, 2, 0), (1, 1, 8, 1), (2, 2, 8, 4), (0, 0, 0, 0)],
)
def test_rank_cuda_index(local_rank: int, per_rank: int, visible: int, index: int) -> None:
    assert rank_cuda_index(local_rank, per_rank, visible) == index


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("before", "after", "reasons", "others", "flags"),
    [
        (0.05, 0.051, ["sw_power_cap", "gpu_idle"], 0, []),  # a power cap is the treatment
        (0.05, 0.07, [], 0, ["calibration 1.40x slower after the trial"]),
        (0.05, None, ["hw_thermal_slowdown"], None, ["throttled: hw_thermal_slowdown"]),
        (None, 0.05, [], 2, ["shared: 2 other process(es) on the GPU"]),
    ],
)
def test_gpu_noise_flags(
    before: float | None, after: float | None, reasons: list[str], others: int | None, flags: list
) -> None:
    assert gpu_noise_flags(before, after, reasons, others) == flags


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("temps", "idle", "ok"),
    [
        ([33.0], [30.0], True),
        ([33.5], [30.0], False),
        ([31.0, 40.0], [30.0, 30.0], False),
        ([None], [30.0], False),
        ([], [], False),
    ],
)
def test_cooled(temps: list, idle: list, ok: bool) -> None:
    assert cooled(temps, idle) is ok


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.timeout(10)
def test_cooldown_ends_once_the_gpu_is_back_at_idle() -> None:
    t = FakeTime()
    temps = iter([60.0, 60.0, 50.0, 40.0, 32.0, 32.0, 32.0])
    record = wait_cooldown(30, lambda: [next(temps)], [30.0], sleep=t.sleep, clock=t.clock)
    assert record["ended_by"] == "idle temperature"
    assert record["waited_s"] == 3.0
    assert record["start_temperature_c"] == [60.0]
    assert record["idle_temperature_c"] == [30.0]


@pytest.mark.timeout(10)
def test_cooldown_without_gpus_waits_the_whole_time() -> None:
    t = FakeTime()
    record = wait_cooldown(7.5, None, [], sleep=t.sleep, clock=t.clock)
    assert record == {"limit_s": 7.5, "ended_by": "time", "waited_s": 7.5}


@pytest.mark.timeout(10)
def test_cooldown_of_a_gpu_that_stays_hot_is_bounded() -> None:
    t = FakeTime()
    record = wait_cooldown(5, lambda: [70.0], [30.0], sleep=t.sleep, clock=t.clock)
    assert record["ended_by"] == "time" and record["waited_s"] == 5.0
