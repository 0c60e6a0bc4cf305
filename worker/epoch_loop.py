"""The instrumented training loop of one epoch, and the bare training step inside it.

:func:`train_step` is the work whose time is "compute": forward, backward, optimiser step. It is
a plain function so ``benchmarks/worker_overhead.py`` can call it both through
:func:`run_epoch` and in a textbook loop, and compare. :func:`run_epoch` adds only what the
analysis needs per iteration: two ``perf_counter`` reads, one preallocated numpy row, running
loss/accuracy sums kept as tensors (no ``.item()``, so no host sync), and a poll of the SIGTERM
flag. On CPU nothing is synchronised. On GPU three reused CUDA events time the step on the device:
the host-to-device copy (part of the data wait, with the host's time blocked on the DataLoader)
and the compute, from the copied batch to the last kernel of the step; waiting on the last event
closes the step, or the host would time kernel launches only. With a ``meter``, each row also
gets the bytes and in-flight time of the step's all-reduces (gradient buckets or local SGD's
averaging).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader

from trainbed.worker.allreduce_meter import AllreduceMeter
from trainbed.worker.timing import IterationLog


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward, step. Returns (loss, logits), both still on the device."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = criterion(logits, y)
    loss.backward()
    optimizer.step()
    return loss, logits


@dataclass
class EpochTotals:
    """What one rank's epoch added up to; ``loss_sum``/``correct`` stay tensors until read."""

    loss_sum: torch.Tensor
    correct: torch.Tensor
    samples: int = 0
    steps: int = 0
    stopped: bool = False


def run_epoch(
    model: nn.Module,
    loader: DataLoader,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    log: IterationLog,
    epoch: int,
    global_step: int,
    *,
    device: torch.device,
    after_step: Callable[[], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    meter: AllreduceMeter | None = None,
) -> EpochTotals:
    """Train one epoch, recording (data wait, compute, step) per iteration into ``log``.

    ``after_step`` runs inside the compute interval (local SGD's model averaging is part of the
    step's cost). ``should_stop`` is polled at each iteration boundary; when it turns true the
    loop ends before the next step and ``stopped`` is set.
    """
    events = _CudaEvents() if device.type == "cuda" else None
    totals = EpochTotals(
        torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
    )
    log.reserve(len(loader))
    model.train()
    last = time.perf_counter()
    for step, (x, y) in enumerate(loader, start=1):
        if should_stop():
            totals.stopped = True
            break
        ready = time.perf_counter()
        if events is not None:
            events.copy.record()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            events.ready.record()
        loss, logits = train_step(model, x, y, criterion, optimizer)
        if after_step is not None:
            after_step()
        if events is not None:
            events.done.record()
            events.done.synchronize()
        done = time.perf_counter()
        if events is not None:
            data_wait, compute = events.seconds(ready - last)
        else:
            data_wait, compute = ready - last, done - ready
        n = y.shape[0]
        totals.loss_sum += loss.detach() * n
        totals.correct += (logits.detach().argmax(1) == y).sum()
        totals.samples += n
        totals.steps += 1
        sent, in_flight = meter.take() if meter is not None else (0, 0.0)
        log.add(
            epoch,
            step,
            global_step + step,
            n,
            data_wait,
            compute,
            done - last,
            sent,
            in_flight,
        )
        last = done
    else:
        totals.stopped = should_stop()
    return totals


class _CudaEvents:
    """Three timing events, reused every step (each step waits on the last, so none is still
    pending when it is recorded again)."""

    def __init__(self) -> None:
        self.copy = torch.cuda.Event(enable_timing=True)
        self.ready = torch.cuda.Event(enable_timing=True)
        self.done = torch.cuda.Event(enable_timing=True)

    def seconds(self, host_wait: float) -> tuple[float, float]:
        """(data wait, compute) of the step just done: the host's wait for the batch plus the
        copy to the device, and the device's time from the copied batch to the step's end."""
        copy = self.copy.elapsed_time(self.ready) / 1e3
        return host_wait + copy, self.ready.elapsed_time(self.done) / 1e3
