"""One rank's training run: data, model, optimiser, the instrumented loop, evaluation, results.

The loop times every iteration on its own (data wait, compute), every epoch on its own (never
cumulatively), shards the training data per rank with ``DistributedSampler`` and calls
``set_epoch`` every epoch, evaluates the *whole* validation and test sets exactly once across the
ranks, and stops early once the accuracy target holds (seed 004). Local SGD (seed 000's sync
period) uses torch's own model averagers.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

import trainbed
from trainbed.worker.datasets import VALIDATION_SEED, load_dataset, validation_split
from trainbed.worker.distributed import all_sum, broadcast_flag, init_group
from trainbed.worker.energy import energy_meter
from trainbed.worker.models import build_model
from trainbed.worker.rank_env import RankEnv
from trainbed.worker.records import TB_DIR, EpochRecord, Result, iterations_path, now_iso
from trainbed.worker.stopping import TargetTracker, epochs_to_run
from trainbed.worker.timing import IterationLog
from trainbed.worker.trial import TrialSpec

SHARDS_DIR = "shards"


def make_optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    """sgd and sgd-nesterov use momentum 0.9 (Nesterov needs momentum); the others their
    defaults."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "sgd-nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward, backward, step: the work whose time is 'compute'. Returns (loss, logits)."""
    optimizer.zero_grad(set_to_none=True)
    logits = model(x)
    loss = criterion(logits, y)
    loss.backward()
    optimizer.step()
    return loss, logits


@dataclass
class EpochTotals:
    loss_sum: torch.Tensor
    correct: torch.Tensor
    samples: int = 0
    steps: int = 0


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
) -> EpochTotals:
    """The instrumented loop. Only perf_counter and a numpy row per iteration are added."""
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    totals = EpochTotals(
        torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long)
    )
    log.reserve(len(loader))
    model.train()
    last = time.perf_counter()
    for step, (x, y) in enumerate(loader, start=1):
        if should_stop():
            break
        if device.type == "cuda":
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        ready = time.perf_counter()
        loss, logits = train_step(model, x, y, criterion, optimizer)
        if after_step is not None:
            after_step()
        if sync is not None:
            sync()
        done = time.perf_counter()
        n = y.shape[0]
        totals.loss_sum += loss.detach() * n
        totals.correct += (logits.detach().argmax(1) == y).sum()
        totals.samples += n
        totals.steps += 1
        log.add(epoch, step, global_step + step, n, ready - last, done - ready, done - last)
        last = done
    return totals


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    env: RankEnv,
    device: torch.device,
    criterion: nn.Module,
    batch: int = 1024,
) -> tuple[float, float]:
    """(accuracy, mean loss) on the whole set: each rank takes every world_size-th sample and
    the counts are summed, so every sample counts exactly once."""
    model.eval()
    xs, ys = x[env.rank :: env.world_size], y[env.rank :: env.world_size]
    correct, loss_sum = 0.0, 0.0
    for start in range(0, len(xs), batch):
        bx, by = xs[start : start + batch].to(device), ys[start : start + batch].to(device)
        logits = model(bx)
        loss_sum += float(criterion(logits, by).item()) * len(by)
        correct += float((logits.argmax(1) == by).sum().item())
    correct, total, loss_sum = all_sum([correct, float(len(xs)), loss_sum], device)
    return correct / total, loss_sum / total


@dataclass
class Trainer:
    spec: TrialSpec
    env: RankEnv
    out: Path
    should_stop: Callable[[], bool]
    log: IterationLog = field(init=False)
    started_at: str = field(default_factory=now_iso)
    started: float = field(default_factory=time.perf_counter)
    epochs: list[EpochRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = IterationLog(self.env.rank)

    def seeds(self) -> dict[str, int]:
        seed = self.spec.seed
        return {
            "trial": seed,
            "torch": seed,
            "numpy": seed,
            "python": seed,
            "sampler": seed,
            "dataloader": seed + self.env.rank,
            "validation_split": VALIDATION_SEED,
        }

    def run(self) -> Result:
        spec, env = self.spec, self.env
        workload = spec.workload
        seeds = self.seeds()
        random.seed(seeds["python"])
        np.random.seed(seeds["numpy"] % 2**32)
        torch.manual_seed(seeds["torch"])
        use_cuda = spec.resources.gpu > 0 and torch.cuda.is_available()
        device = torch.device(f"cuda:{env.local_rank}" if use_cuda else "cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        if env.distributed:
            init_group(env, "nccl" if use_cuda else "gloo")

        data = load_dataset(workload.dataset)
        train_idx, val_idx = validation_split(len(data.train_y), workload.validation_fraction)
        train_set = TensorDataset(data.train_x[train_idx], data.train_y[train_idx])
        val_x, val_y = data.train_x[val_idx], data.train_y[val_idx]
        sampler = DistributedSampler(
            train_set,
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=True,
            seed=seeds["sampler"],
            drop_last=True,
        )
        generator = torch.Generator().manual_seed(seeds["dataloader"])
        workers = workload.dataloader_workers
        loader = DataLoader(
            train_set,
            batch_size=workload.batch_size,
            sampler=sampler,
            num_workers=workers,
            generator=generator,
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
        averager = None
        if local_sgd and workload.sync_period and workload.sync_period >= 1:
            from torch.distributed.algorithms.model_averaging.averagers import (
                PeriodicModelAverager,
            )

            averager = PeriodicModelAverager(period=workload.sync_period, warmup_steps=0)
        optimizer = make_optimizer(workload.optimizer, net.parameters(), workload.lr)
        criterion = nn.CrossEntropyLoss()
        after_step = (lambda: averager.average_parameters(model.parameters())) if averager else None

        writer = self._writer() if env.is_main else None
        meter = energy_meter(str(device), env.local_rank)
        target = workload.target_accuracy
        tracker = TargetTracker(target.threshold, target.patience) if target else None
        budget = epochs_to_run(
            workload.epochs, target.max_epochs if target else None, target is not None
        )
        shards: list[dict[str, Any]] = []
        tta: float | None = None
        eta: float | None = None
        energy_start = meter.joules()
        train_start = time.perf_counter()
        global_step = 0
        terminated = False
        for epoch in range(1, budget + 1):
            sampler.set_epoch(epoch)
            shards.append(_shard_record(epoch, list(iter(sampler))))
            t0 = time.perf_counter()
            totals = run_epoch(
                net,
                loader,
                criterion,
                optimizer,
                self.log,
                epoch,
                global_step,
                device=device,
                after_step=after_step,
                should_stop=self.should_stop,
            )
            train_time = time.perf_counter() - t0
            global_step += totals.steps
            if self.should_stop():
                terminated = True
                break
            t1 = time.perf_counter()
            loss_sum, correct, samples = all_sum(
                [float(totals.loss_sum), float(totals.correct), float(totals.samples)], device
            )
            val_acc, val_loss = evaluate(model, val_x, val_y, env, device, criterion)
            test_acc, _ = evaluate(model, data.test_x, data.test_y, env, device, criterion)
            val_time = time.perf_counter() - t1
            data_wait, compute = self.log.epoch_sums(epoch)
            record = EpochRecord(
                epoch=epoch,
                train_time_s=train_time,
                val_time_s=val_time,
                train_loss=loss_sum / max(samples, 1),
                train_accuracy=correct / max(samples, 1),
                val_loss=val_loss,
                val_accuracy=val_acc,
                test_accuracy=test_acc,
                samples_per_s=samples / train_time if train_time > 0 else None,
                data_wait_s=data_wait,
                compute_s=compute,
            )
            self.epochs.append(record)
            if writer is not None:
                _scalars(writer, record)
            met = tracker.update(epoch, val_acc) if tracker else False
            if met:
                tta = time.perf_counter() - train_start
                joules = meter.joules()
                eta = _energy_delta(joules, energy_start)
            stop = broadcast_flag(bool(tracker and tracker.met), device)
            if stop:
                break

        final_test = self.epochs[-1].test_accuracy if self.epochs else None
        if not terminated and env.distributed and workload.sync_period == -1:
            from torch.distributed.algorithms.model_averaging.utils import average_parameters

            average_parameters(model.parameters(), dist.group.WORLD)
            final_test, _ = evaluate(model, data.test_x, data.test_y, env, device, criterion)
        train_time_s = time.perf_counter() - train_start
        energy = _energy_delta(meter.joules(), energy_start)
        energy_total = self._sum_energy(energy, device, terminated)

        self.log.write(iterations_path(self.out, env.rank))
        shard_file = self.out / SHARDS_DIR / f"rank-{env.rank}.json"
        shard_file.parent.mkdir(parents=True, exist_ok=True)
        shard_file.write_text(json.dumps(shards))
        if writer is not None:
            self._hparams(writer, final_test)
            writer.close()

        epoch_time = sum(e.train_time_s for e in self.epochs)
        total_samples = sum((e.samples_per_s or 0) * e.train_time_s for e in self.epochs)
        accuracies = [e.val_accuracy for e in self.epochs if e.val_accuracy is not None]
        return Result(
            campaign=spec.campaign,
            trial_id=spec.trial_id,
            status="terminated" if terminated else "succeeded",
            reason="SIGTERM: stopped at an iteration boundary" if terminated else "",
            started_at=self.started_at,
            finished_at=now_iso(),
            wall_time_s=time.perf_counter() - self.started,
            train_time_s=epoch_time if self.epochs else train_time_s,
            epochs_run=len(self.epochs),
            final_accuracy=accuracies[-1] if accuracies else None,
            best_accuracy=max(accuracies) if accuracies else None,
            test_accuracy=final_test,
            time_to_accuracy_s=tta,
            energy_to_accuracy_j=eta if energy_total is not None else None,
            samples_per_s=total_samples / epoch_time if epoch_time > 0 else None,
            energy_j=energy_total,
            energy_source=meter.source,
            first_iteration_s=self.log.first_step_s(),
            validation_time_s=sum(e.val_time_s for e in self.epochs),
            epochs=self.epochs,
            enforcement=_enforcement(),
            seeds=seeds,
            world_size=env.world_size,
            device=str(device),
            versions={
                "trainbed": trainbed.__version__,
                "torch": torch.__version__,
                "python": platform.python_version(),
            },
            target_met_epoch=tracker.met_epoch if tracker else None,
            threads=torch.get_num_threads(),
        )

    def _sum_energy(
        self, energy: float | None, device: torch.device, terminated: bool
    ) -> float | None:
        """Energy of all ranks, or None if any rank could not measure (never a partial sum
        passed off as the whole)."""
        if not self.env.distributed or terminated:
            return energy
        measured, missing = all_sum([energy or 0.0, 0.0 if energy is not None else 1.0], device)
        return None if missing > 0 else measured

    def _writer(self) -> Any:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=str(self.out / TB_DIR))

    def _hparams(self, writer: Any, final_test: float | None) -> None:
        workload = self.spec.workload
        hparams: dict[str, Any] = {
            "trial_id": self.spec.trial_id,
            "replicate": self.spec.replicate,
            "dataset": workload.dataset,
            "model": workload.model,
            "epochs": workload.epochs,
            "batch_size": workload.batch_size,
            "optimizer": workload.optimizer,
            "lr": workload.lr,
            "parallelism": workload.parallelism,
            "cpu": str(self.spec.resources.cpu),
            "memory": str(self.spec.resources.memory),
        }
        for name, level in self.spec.levels.items():
            hparams[f"level/{name}"] = (
                level if isinstance(level, int | float | str | bool) else json.dumps(level)
            )
        metrics = {
            "hparam/final_accuracy": self.epochs[-1].val_accuracy if self.epochs else 0.0,
            "hparam/test_accuracy": final_test if final_test is not None else 0.0,
        }
        writer.add_hparams(hparams, metrics, run_name=".")


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _shard_record(epoch: int, indices: list[int]) -> dict[str, Any]:
    digest = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
    record: dict[str, Any] = {"epoch": epoch, "count": len(indices), "sha256": digest}
    if epoch == 1:
        record["indices"] = indices
    return record


def _scalars(writer: Any, record: EpochRecord) -> None:
    step = record.epoch
    values = {
        "accuracy per epoch": record.val_accuracy,
        "train/loss": record.train_loss,
        "train/accuracy": record.train_accuracy,
        "val/loss": record.val_loss,
        "val/accuracy": record.val_accuracy,
        "test/accuracy": record.test_accuracy,
        "time/epoch_train_s": record.train_time_s,
        "time/epoch_val_s": record.val_time_s,
        "time/data_wait_s": record.data_wait_s,
        "time/compute_s": record.compute_s,
        "throughput/samples_per_s": record.samples_per_s,
    }
    for tag, value in values.items():
        if value is not None:
            writer.add_scalar(tag, value, step)
    writer.flush()


def _energy_delta(now: float | None, start: float | None) -> float | None:
    if now is None or start is None:
        return None
    return now - start


def _enforcement() -> dict[str, Any]:
    raw = os.environ.get("TRAINBED_ENFORCEMENT")
    if not raw:
        return {"mode": "none"}
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return {"mode": "unknown", "raw": raw}
