"""How much does the worker's instrumentation cost? The instrumented loop against a plain one.

Interleaves ``trainer.run_epoch`` (perf_counter and a numpy row per iteration) and a plain
PyTorch loop (``for x, y in loader: train_step(...)``) over the same model, data and batch size,
several repeats each, on CPU. Each repeat gives a step time (epoch time / steps) per loop and
their ratio; the last line is the median ratio::

    worker_overhead ratio: X      (target X <= 1.02)

With ``--sampling``, both loops are the instrumented one, and one of them runs with the GPU power
sampler (:class:`~trainbed.worker.power_sampler.PowerSampler`) reading at ``--hz`` while it
trains, as the worker does; the last line is then::

    power_sampling ratio: X       (sampling on / off, target X <= 1.02)

Before it, the sampler thread's own CPU time over the time it sampled: the direct cost, which
a noisy machine's step times cannot resolve to 2%.

The sampler reads NVML where it opens GPU 0; elsewhere (no GPU) a stand-in reader that reads
``/proc/stat`` and the load average, so the thread's wake-ups and its share of the GIL are still
what is measured (said on the output). ``--device cuda`` trains on the GPU.

Run: ``.venv/bin/python benchmarks/worker_overhead.py [--repeats 7] [--threads 1] [--sampling]``.
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
from trainbed.worker.power_sampler import PowerSample, PowerSampler, Reader, nvml_reader
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


DEVICE = torch.device("cpu")


def fresh(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = build_model("FashionMNISTCNN", 1, 28, 10, True).to(DEVICE)
    return model, make_optimizer("sgd", model.parameters(), 0.01)


def instrumented(
    loader: DataLoader, criterion: nn.Module, seed: int, sampler: PowerSampler | None = None
) -> float:
    model, optimizer = fresh(seed)
    log = IterationLog(0)
    t0 = time.perf_counter()
    if sampler is not None:
        sampler.resume()
    totals = run_epoch(model, loader, criterion, optimizer, log, 1, 0, device=DEVICE)
    if sampler is not None:
        sampler.pause()
    elapsed = time.perf_counter() - t0
    return elapsed / totals.steps


def plain(loader: DataLoader, criterion: nn.Module, seed: int) -> float:
    model, optimizer = fresh(seed)
    model.train()
    steps = 0
    t0 = time.perf_counter()
    for x, y in loader:
        if DEVICE.type == "cuda":
            x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
        train_step(model, x, y, criterion, optimizer)
        steps += 1
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - t0
    return elapsed / steps


def power_reader() -> tuple[Reader, str]:
    """NVML's reader of GPU 0, or the stand-in where there is none (and why)."""
    try:
        return nvml_reader([0]), "nvml GPU 0"
    except Exception as err:  # noqa: BLE001 - no GPU here: the stand-in
        why = f"{type(err).__name__}"

    def stand_in() -> list[PowerSample]:
        with open("/proc/stat") as handle:
            handle.read()
        with open("/proc/loadavg") as handle:
            load = float(handle.read().split()[0])
        return [PowerSample(power_w=load)]

    return stand_in, f"stand-in /proc reader (no NVML: {why})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sampling", action="store_true", help="sampler on vs off")
    parser.add_argument("--hz", type=float, default=10.0, help="the sampler's rate")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    criterion = nn.CrossEntropyLoss()
    loader = make_loader(0)
    if args.sampling:
        sampling(args, loader, criterion)
        return
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


def sampling(args: argparse.Namespace, loader: DataLoader, criterion: nn.Module) -> None:
    """The instrumented loop with the power sampler on against off, interleaved."""
    read, source = power_reader()
    sampler = PowerSampler(read, hz=args.hz).start()
    instrumented(loader, criterion, 0, sampler)
    instrumented(loader, criterion, 0)
    on_times, off_times, ratios = [], [], []
    for rep in range(args.repeats):
        if rep % 2 == 0:
            on = instrumented(loader, criterion, rep, sampler)
            off = instrumented(loader, criterion, rep)
        else:
            off = instrumented(loader, criterion, rep)
            on = instrumented(loader, criterion, rep, sampler)
        on_times.append(on)
        off_times.append(off)
        ratios.append(on / off)
        print(
            f"repeat {rep + 1}: sampling on {on * 1e3:.3f} ms/step, off {off * 1e3:.3f} ms/step,"
            f" ratio {on / off:.4f}"
        )
    sampler.stop()
    print(
        f"device: {DEVICE}, threads: {args.threads}, reader: {source}, {args.hz:g} Hz, "
        f"samples taken: {len(sampler.samples)} in {sampler.active_s:.1f} s sampled, "
        f"steps/epoch: {len(loader)}, repeats: {args.repeats}"
    )
    share = sampler.cpu_s / sampler.active_s if sampler.active_s else 0.0
    print(
        f"sampler thread CPU: {sampler.cpu_s * 1e3:.1f} ms in {sampler.active_s:.1f} s sampled "
        f"({share:.4%} of one core: its direct cost, free of the machine's noise)"
    )
    print(f"median step, sampling on: {statistics.median(on_times) * 1e3:.3f} ms")
    print(f"median step, sampling off: {statistics.median(off_times) * 1e3:.3f} ms")
    print(f"power_sampling ratio: {statistics.median(ratios):.4f}")


if __name__ == "__main__":
    main()
