"""The all-reduce meter's arithmetic: union of in-flight intervals, bus bandwidth, one step at a
time (what real ranks record is tests/worker/test_allreduce_columns.py)."""

from __future__ import annotations

import pytest

from trainbed.worker.allreduce_meter import AllreduceMeter, bus_bps, bus_factor, union_seconds


@pytest.mark.parametrize(
    ("intervals", "total"),
    [
        ([], 0.0),
        ([(0.0, 1.0)], 1.0),
        ([(0.0, 1.0), (2.0, 3.0)], 2.0),
        ([(0.0, 2.0), (1.0, 3.0)], 3.0),  # overlapping buckets are counted once
        ([(1.0, 3.0), (0.0, 2.0), (2.5, 2.6)], 3.0),
        ([(0.0, 5.0), (1.0, 2.0)], 5.0),  # nested
        ([(0.0, 1.0), (1.0, 2.0)], 2.0),  # touching
    ],
)
def test_union_seconds(intervals: list[tuple[float, float]], total: float) -> None:
    assert union_seconds(intervals) == pytest.approx(total)


@pytest.mark.parametrize(
    ("payload", "seconds", "world", "bps"),
    [
        (2_500_000, 1.0, 2, 20_000_000.0),  # two ranks: each sends the payload once
        (2_500_000, 1.0, 4, 30_000_000.0),  # ring: 2(n-1)/n
        (0, 1.0, 2, None),
        (100, 0.0, 2, None),
        (100, 1.0, 1, None),
    ],
)
def test_bus_bandwidth(payload: int, seconds: float, world: int, bps: float | None) -> None:
    assert bus_bps(payload, seconds, world) == bps
    assert bus_factor(2) == 1.0 and bus_factor(1) == 0.0


def test_meter_takes_one_step_at_a_time() -> None:
    meter = AllreduceMeter()
    assert meter.take() == (0, 0.0)
    meter.record(0.0, 0.5, 100)
    meter.record(0.25, 1.0, 50)
    assert meter.take() == (150, 1.0)
    assert meter.take() == (0, 0.0)
