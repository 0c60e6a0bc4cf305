"""How much does the worker's instrumentation cost? The instrumented loop against a plain one.

Interleaves ``trainer.run_epoch`` (perf_counter and a numpy row per iteration) and a plain
PyTorch loop (``for x, y in loader: train_step(...)``) over the same model, data and batch size,
several repeats each, on CPU. Each repeat gives a step time (epoch time / steps) per loop and
their ratio; the last line is the median ratio::

    worker_overhead ratio: X      (target X <= 1.02)

Run: ``.venv/bin/python benchmarks/worker_overhead.py [--repeats 7] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from trainbed.worker.epoch_loop import run_epoch, train_step
from trainbed.worker.models import build_model
from trainbed.worker.optimizers import make_optimizer
from trainbed.worker.timing import IterationLog

SAMPLES = 2048
BATCH = 128


def make_loader(seed: int) -> DataLoader:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, 1, 28, 28, generator=gen)
    y = torch.randint(0, 10, (SAMPLES,), generator=gen)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed + 1),
    )


def fresh(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = build_model("FashionMNISTCNN", 1, 28, 10, True)
    return model, make_optimizer("sgd", model.parameters(), 0.01)


def instrumented(loader: DataLoader, criterion: nn.Module, seed: int) -> float:
    model, optimizer = fresh(seed)
    log = IterationLog(0)
    t0 = time.perf_counter()
    totals = run_epoch(model, loader, criterion, optimizer, log, 1, 0, device=torch.device("cpu"))
    elapsed = time.perf_counter() - t0
    return elapsed / totals.steps


def plain(loader: DataLoader, criterion: nn.Module, seed: int) -> float:
    model, optimizer = fresh(seed)
    model.train()
    steps = 0
    t0 = time.perf_counter()
    for x, y in loader:
        train_step(model, x, y, criterion, optimizer)
        steps += 1
    elapsed = time.perf_counter() - t0
    return elapsed / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    criterion = nn.CrossEntropyLoss()
    loader = make_loader(0)
    # Warm-up: allocator, kernels, first-call costs of both paths.
    plain(loader, criterion, 0)
    instrumented(loader, criterion, 0)

    inst_times, plain_times, ratios = [], [], []
    for rep in range(args.repeats):
        # Alternate the order so neither loop always runs second (thermal, cache effects).
        if rep % 2 == 0:
            i = instrumented(loader, criterion, rep)
            p = plain(loader, criterion, rep)
        else:
            p = plain(loader, criterion, rep)
            i = instrumented(loader, criterion, rep)
        inst_times.append(i)
        plain_times.append(p)
        ratios.append(i / p)
        print(
            f"repeat {rep + 1}: instrumented {i * 1e3:.3f} ms/step, plain {p * 1e3:.3f} ms/step,"
            f" ratio {i / p:.4f}"
        )
    print(
        f"threads: {args.threads}, samples: {SAMPLES}, batch: {BATCH}, "
        f"steps/epoch: {len(loader)}, repeats: {args.repeats}"
    )
    print(f"median instrumented step: {statistics.median(inst_times) * 1e3:.3f} ms")
    print(f"median plain step: {statistics.median(plain_times) * 1e3:.3f} ms")
    print(f"worker_overhead ratio: {statistics.median(ratios):.4f}")


if __name__ == "__main__":
    main()
