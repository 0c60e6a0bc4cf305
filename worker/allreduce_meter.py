"""What each training step all-reduces: bytes and in-flight time, per rank, for the iteration log.

Two paths carry a step's traffic. Plain DDP all-reduces gradient buckets during backward: a DDP
communication hook (:func:`metered_allreduce_hook`) wraps the default all-reduce and notes each
bucket's size, launch and completion. Local SGD averages the parameters every k steps
(:func:`metered_averaging`). Either way the meter keeps intervals, and :meth:`AllreduceMeter.take`
reports the step's bytes and the union of its intervals: the time at least one all-reduce was in
flight, so buckets that overlap each other, or queue behind each other, are not counted twice.

The hook's callback runs on the process group's thread; a list append is atomic under the GIL,
and DDP waits for every bucket's future (callback included) before ``backward`` returns, so the
main thread reads a complete step.

No ``from __future__ import annotations`` here: DDP compares the hook's annotations with
``dist.GradBucket`` and ``Future[Tensor]`` themselves, and refuses strings.
"""

import time
from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist
from torch import nn


def bus_factor(world_size: int) -> float:
    """Bytes each rank sends per payload byte in a ring all-reduce: 2(n-1)/n (1 for two ranks)."""
    return 2.0 * (world_size - 1) / world_size if world_size > 1 else 0.0


def bus_bps(payload_bytes: float, seconds: float, world_size: int) -> float | None:
    """Achieved bus bandwidth in bits/s (comparable with ``resources.bandwidth``), or None when
    nothing was sent or no time was measured."""
    if payload_bytes <= 0 or seconds <= 0 or world_size < 2:
        return None
    return payload_bytes * 8.0 * bus_factor(world_size) / seconds


def union_seconds(intervals: Iterable[tuple[float, float]]) -> float:
    """Total length of the union of (start, end) intervals."""
    total = 0.0
    current: tuple[float, float] | None = None
    for start, end in sorted(intervals):
        if current is None or start > current[1]:
            if current is not None:
                total += current[1] - current[0]
            current = (start, end)
        else:
            current = (current[0], max(current[1], end))
    if current is not None:
        total += current[1] - current[0]
    return total


class AllreduceMeter:
    """Collects one step's all-reduces; :meth:`take` returns (bytes, seconds) and starts anew."""

    def __init__(self) -> None:
        self._events: list[tuple[float, float, int]] = []

    def record(self, start: float, end: float, nbytes: int) -> None:
        self._events.append((start, end, nbytes))

    def take(self) -> tuple[int, float]:
        events, self._events = self._events, []
        if not events:
            return 0, 0.0
        return sum(e[2] for e in events), union_seconds((e[0], e[1]) for e in events)


def metered_allreduce_hook(
    meter: AllreduceMeter, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP's default all-reduce (sum, then divide by the world size), timed and counted."""
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    buffer = bucket.buffer()
    nbytes = buffer.numel() * buffer.element_size()
    start = time.perf_counter()
    future = allreduce_hook(None, bucket)  # type: ignore[arg-type] - None: the default group

    def done(fut: torch.futures.Future[torch.Tensor]) -> torch.Tensor:
        meter.record(start, time.perf_counter(), nbytes)
        return fut.value()

    return future.then(done)


def metered_averaging(
    average: Callable[[], None],
    will_average: Callable[[], bool],
    model: nn.Module,
    meter: AllreduceMeter,
) -> Callable[[], None]:
    """Wrap local SGD's ``average_parameters`` call: a step that averages all-reduces every
    parameter once (one flat buffer), blocking; a step that does not sends nothing."""
    nbytes = sum(p.numel() * p.element_size() for p in model.parameters())

    def step() -> None:
        if not will_average():
            average()
            return
        start = time.perf_counter()
        average()
        meter.record(start, time.perf_counter(), nbytes)

    return step
