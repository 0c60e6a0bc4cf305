"""A rank's run before its first epoch: seeds, device, the DDP world, data, model, optimiser.

Split from :mod:`trainbed.worker.trainer`, which owns the loop. A rank given its own GPUs by the
local executor (``CUDA_VISIBLE_DEVICES``) sees them as ``cuda:0``...; under torchrun on a host
whose GPUs are all visible it takes ``cuda:local_rank * gpu``
(:func:`trainbed.contract.gpu.rank_cuda_index`). Ranks with GPUs use NCCL, the others gloo.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from trainbed.contract.gpu import rank_cuda_index
from trainbed.contract.trial import TrialSpec
from trainbed.worker.allreduce_meter import (
    AllreduceMeter,
    metered_allreduce_hook,
    metered_averaging,
)
from trainbed.worker.datasets import Arrays, load_dataset, validation_split
from trainbed.worker.distributed import init_group
from trainbed.worker.models import build_model
from trainbed.worker.optimizers import make_optimizer
from trainbed.worker.rank_env import RankEnv


@dataclass
class Run:
    """Everything a run sets up before its first epoch."""

    device: torch.device
    data: Arrays
    sampler: DistributedSampler
    loader: DataLoader
    model: nn.Module
    net: nn.Module
    optimizer: torch.optim.Optimizer
    after_step: Callable[[], None] | None
    local_sgd: bool


def set_up(spec: TrialSpec, env: RankEnv, seeds: dict[str, int], meter: AllreduceMeter) -> Run:
    """Seed every RNG, pick the device, join the DDP world, and build the run's parts."""
    workload = spec.workload
    random.seed(seeds["python"])
    np.random.seed(seeds["numpy"] % 2**32)
    torch.manual_seed(seeds["torch"])
    use_cuda = spec.resources.gpu > 0 and torch.cuda.is_available()
    index = rank_cuda_index(env.local_rank, spec.resources.gpu, torch.cuda.device_count())
    device = torch.device(f"cuda:{index}" if use_cuda else "cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if env.distributed:
        init_group(env, "nccl" if use_cuda else "gloo")

    data = load_dataset(workload.dataset)
    train_idx, _ = validation_split(len(data.train_y), workload.validation_fraction)
    train_set = TensorDataset(data.train_x[train_idx], data.train_y[train_idx])
    # drop_last: shards stay disjoint (padding would repeat samples across ranks); at most
    # world_size - 1 samples sit out an epoch, a different few each epoch.
    sampler = DistributedSampler(
        train_set,
        num_replicas=env.world_size,
        rank=env.rank,
        shuffle=True,
        seed=seeds["sampler"],
        drop_last=True,
    )
    workers = workload.dataloader_workers
    loader = DataLoader(
        train_set,
        batch_size=workload.batch_size,
        sampler=sampler,
        num_workers=workers,
        generator=torch.Generator().manual_seed(seeds["dataloader"]),
        pin_memory=use_cuda,
        persistent_workers=workers > 0,
        worker_init_fn=_seed_worker if workers > 0 else None,
    )
    model = build_model(
        workload.model, data.channels, data.size, data.classes, workload.batch_norm
    ).to(device)
    local_sgd = env.distributed and workload.sync_period is not None
    net: nn.Module = model
    if env.distributed and not local_sgd:
        net = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None
        )
        net.register_comm_hook(meter, metered_allreduce_hook)
    after_step = None
    if local_sgd and workload.sync_period is not None and workload.sync_period >= 1:
        from torch.distributed.algorithms.model_averaging.averagers import (
            PeriodicModelAverager,
        )

        averager = PeriodicModelAverager(period=workload.sync_period, warmup_steps=0)

        def average() -> None:
            averager.average_parameters(model.parameters())

        def due() -> bool:  # PeriodicModelAverager's own rule, read before it steps
            step, warmup = averager.step, averager.warmup_steps
            return step >= warmup and (step - warmup) % averager.period == 0

        after_step = metered_averaging(average, due, model, meter)

    optimizer = make_optimizer(workload.optimizer, net.parameters(), workload.lr)
    return Run(device, data, sampler, loader, model, net, optimizer, after_step, local_sgd)


def _seed_worker(worker_id: int) -> None:
    """DataLoader workers: numpy and random follow torch's per-worker seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
