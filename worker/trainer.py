"""One rank's training run: the epoch loop, evaluation, energy, and the result.

It fixes what the seeds' testbed measured wrongly: every rank trains on its own shard
(``DistributedSampler`` with ``set_epoch`` every epoch, indices recorded in ``shards/``), each epoch
is timed on its own (never cumulatively), and the validation and test sets are evaluated whole, each
sample once. It stops early once the accuracy target holds (the energy-to-accuracy study's rule) and
uses torch's own model averagers for local SGD (the sync-period study's k). Whatever happens,
:meth:`Trainer.run` or :meth:`Trainer.failed` produces the rank's
:class:`~trainbed.contract.records.Result`, and the iterations and shards are written once, after
training, never inside the hot loop. The setup (seeds, device, DDP, data, model) is
:mod:`~trainbed.worker.run_setup`'s; energy and GPU power, :mod:`~trainbed.worker.energy_ledger`'s.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from trainbed.contract.layout import TrialLayout
from trainbed.contract.records import (
    EpochRecord,
    Result,
    Status,
    now_iso,
)
from trainbed.contract.trial import TrialSpec, epochs_to_run
from trainbed.worker.allreduce_meter import AllreduceMeter
from trainbed.worker.datasets import VALIDATION_SEED, validation_split
from trainbed.worker.distributed import all_gather, all_sum, broadcast_flag
from trainbed.worker.energy_ledger import EnergyLedger, pack, rank_ledger, sample_hz, unpack
from trainbed.worker.epoch_loop import run_epoch
from trainbed.worker.evaluation import evaluate
from trainbed.worker.host_info import read_host
from trainbed.worker.power_sampler import combine_power
from trainbed.worker.provenance import read_enforcement, versions
from trainbed.worker.rank_env import RankEnv
from trainbed.worker.run_setup import set_up
from trainbed.worker.stopping import TargetTracker
from trainbed.worker.tensorboard_log import TensorBoardLog
from trainbed.worker.timing import IterationLog

TERMINATED_REASON = "SIGTERM: stopped at an iteration boundary"


@dataclass
class Trainer:
    """Trains one rank of ``spec`` and keeps what it measured, so a failure can still report it."""

    spec: TrialSpec
    env: RankEnv
    out: Path
    should_stop: Callable[[], bool]
    log: IterationLog = field(init=False)
    started_at: str = field(default_factory=now_iso)
    started: float = field(default_factory=time.perf_counter)
    epochs: list[EpochRecord] = field(default_factory=list)
    shards: list[dict[str, Any]] = field(default_factory=list)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    ledger: EnergyLedger = field(default_factory=lambda: EnergyLedger.unmeasured("not started"))
    #: the bytes and in-flight time of each step's all-reduces, for the iteration log
    allreduce: AllreduceMeter = field(default_factory=AllreduceMeter)
    tracker: TargetTracker | None = None
    time_to_accuracy_s: float | None = None
    energy_to_accuracy_j: float | None = None
    #: len(DataLoader) of a full epoch, recorded for the pilot's predictions
    steps_per_epoch: int | None = None
    _flushed: bool = False

    def __post_init__(self) -> None:
        self.log = IterationLog(self.env.rank, world_size=self.env.world_size)

    def seeds(self) -> dict[str, int]:
        """Every seed the run uses, as recorded in ``result.seeds``."""
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

    # --- setup -------------------------------------------------------------------------------

    # --- the run -----------------------------------------------------------------------------

    def run(self) -> Result:
        """Train to the end, the target, or SIGTERM; returns ``succeeded`` or ``terminated``."""
        workload, env = self.spec.workload, self.env
        run = set_up(self.spec, self.env, self.seeds(), self.allreduce)
        self.device = run.device
        device, data = run.device, run.data
        _, val_idx = validation_split(len(data.train_y), workload.validation_fraction)
        val_x, val_y = data.train_x[val_idx], data.train_y[val_idx]
        criterion = nn.CrossEntropyLoss()
        tb = TensorBoardLog(self.out) if env.is_main else None
        self.ledger = rank_ledger(str(device), env.local_rank, sample_hz())
        target = workload.target_accuracy
        self.tracker = TargetTracker(target.threshold, target.patience) if target else None
        budget = epochs_to_run(
            workload.epochs, target.max_epochs if target else None, target is not None
        )
        self.steps_per_epoch = len(run.loader)
        pilot = self.spec.pilot_iterations
        if pilot is not None:
            # a pilot (trainbed pilot): `pilot` iterations in all, the last epoch cut short;
            # no target, so it never stops before measuring them
            self.tracker = None
            budget = math.ceil(pilot / max(self.steps_per_epoch, 1))
        identical = not run.local_sgd
        self.ledger.begin()
        test_time_total = 0.0  # test evaluation is measurement, not training: kept out of TTA
        global_step = 0
        terminated = False
        train_start = time.perf_counter()
        for epoch in range(1, budget + 1):
            run.sampler.set_epoch(epoch)
            self.shards.append(_shard_record(epoch, list(iter(run.sampler))))
            self.ledger.train_begin()
            t0 = time.perf_counter()
            totals = run_epoch(
                run.net,
                run.loader if pilot is None else _First(run.loader, pilot - global_step),
                criterion,
                run.optimizer,
                self.log,
                epoch,
                global_step,
                device=device,
                after_step=run.after_step,
                should_stop=self.should_stop,
                meter=self.allreduce,
            )
            train_time = time.perf_counter() - t0
            self.ledger.train_end()
            global_step += totals.steps
            if totals.stopped:
                terminated = True
                break
            t1 = time.perf_counter()
            loss_sum, correct, samples = all_sum(
                [float(totals.loss_sum), float(totals.correct), float(totals.samples)], device
            )
            val_acc, val_loss = evaluate(
                run.model, val_x, val_y, env, device, criterion, identical_models=identical
            )
            t2 = time.perf_counter()
            self.ledger.test_begin()
            test_acc, _ = evaluate(
                run.model,
                data.test_x,
                data.test_y,
                env,
                device,
                criterion,
                identical_models=identical,
            )
            t3 = time.perf_counter()
            # the time-to-accuracy clock: training wall time up to the end of this validation,
            # without the test-set passes of earlier epochs (this epoch's comes after t2)
            elapsed = t2 - train_start - test_time_total
            test_time_total += t3 - t2
            self.ledger.test_end()
            data_wait, compute = self.log.epoch_sums(epoch)
            record = EpochRecord(
                epoch=epoch,
                train_time_s=train_time,
                val_time_s=t3 - t1,
                test_time_s=t3 - t2,
                train_loss=loss_sum / max(samples, 1),
                train_accuracy=correct / max(samples, 1),
                val_loss=val_loss,
                val_accuracy=val_acc,
                test_accuracy=test_acc,
                samples_per_s=samples / train_time if train_time > 0 else None,
                data_wait_s=data_wait,
                compute_s=compute,
                elapsed_s=elapsed,
            )
            self.epochs.append(record)
            if tb is not None:
                tb.epoch(record)
            if self.tracker is not None and self.tracker.update(epoch, val_acc):
                # val_acc is the same number on every rank, so all ranks agree on this epoch.
                self.time_to_accuracy_s = elapsed
                self.energy_to_accuracy_j = self.ledger.so_far()
            if broadcast_flag(bool(self.tracker and self.tracker.met), device):
                break

        final_test = self.epochs[-1].test_accuracy if self.epochs else None
        if not terminated and env.distributed and workload.sync_period == -1:
            from torch.distributed.algorithms.model_averaging.utils import average_parameters

            average_parameters(run.model.parameters(), dist.group.WORLD)
            final_test, _ = evaluate(run.model, data.test_x, data.test_y, env, device, criterion)
        energy = self._energy(self.energy_to_accuracy_j, collective=not terminated)
        self.flush()
        if tb is not None:
            tb.close(
                self.spec,
                {
                    "final_accuracy": self.epochs[-1].val_accuracy if self.epochs else None,
                    "test_accuracy": final_test,
                },
            )
        if terminated:
            return self._result("terminated", TERMINATED_REASON, {**energy, "to_accuracy_j": None})
        return self._result("succeeded", "", energy, test_accuracy=final_test)

    def failed(self, err: BaseException) -> Result:
        """The ``failed`` result after an exception: what was measured, and the reason
        (``terminated`` when SIGTERM came first: the error is then the stop's echo).

        No collectives here (a peer may be gone), so energy is this rank's alone and only kept
        when this rank is the whole world.
        """
        text = str(err).splitlines()[0] if str(err) else ""
        try:
            self.flush()
        except OSError as flush_err:
            text += f" (and writing iterations failed: {flush_err})"
        energy = self._energy(None, collective=False)
        reason = f"{type(err).__name__}: {text}"
        if self.should_stop():
            # SIGTERM reaches the ranks at different iterations: one that stopped first leaves
            # its peer's all-reduce without a partner, and the peer's error is part of the stop.
            return self._result("terminated", f"{TERMINATED_REASON} ({reason})"[:500], energy)
        return self._result("failed", reason[:500], energy)

    # --- outputs -----------------------------------------------------------------------------

    def flush(self) -> None:
        """Write this rank's iterations and shards (once; after training, or on a failure)."""
        if self._flushed:
            return
        self._flushed = True
        self.log.write(TrialLayout(self.out).iterations_file(self.env.rank))
        path = TrialLayout(self.out).shards_file(self.env.rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.shards))

    def _energy(self, to_accuracy_j: float | None, *, collective: bool) -> dict[str, Any]:
        """The energy fields, summed over ranks (null where any rank could not measure) and
        the power summaries combined. Without collectives (a failure: a peer may be gone) a
        rank's own numbers are kept only when it is the whole world."""
        self.ledger.close()
        mine = self.ledger.totals()
        values = [mine["energy"], to_accuracy_j, mine["train"], mine["gpu"], mine["cpu"]]
        power = self.ledger.sampler.summary() if self.ledger.sampler else None
        if self.env.distributed:
            if collective:
                values = unpack(all_sum(pack(values), self.device))
                power = combine_power(all_gather(power))  # type: ignore[arg-type]
            else:
                values, power = [None] * len(values), None
        energy, to_accuracy_j, train, gpu, cpu = values
        return {
            "energy": energy,
            "to_accuracy_j": to_accuracy_j,
            "train": train,
            "by_device": {"gpu": gpu, "cpu": cpu},
            "power": power,
        }

    def _result(
        self,
        status: Status,
        reason: str,
        energy: dict[str, Any],
        *,
        test_accuracy: float | None = None,
    ) -> Result:
        epochs = self.epochs
        train_time = sum(e.train_time_s for e in epochs)
        samples = sum((e.samples_per_s or 0.0) * e.train_time_s for e in epochs)
        accuracies = [e.val_accuracy for e in epochs if e.val_accuracy is not None]
        if test_accuracy is None and epochs:
            test_accuracy = epochs[-1].test_accuracy
        met = self.tracker.met_epoch if self.tracker else None
        return Result(
            campaign=self.spec.campaign,
            trial_id=self.spec.trial_id,
            status=status,
            reason=reason,
            started_at=self.started_at,
            finished_at=now_iso(),
            wall_time_s=time.perf_counter() - self.started,
            train_time_s=train_time if epochs else None,
            epochs_run=len(epochs),
            final_accuracy=accuracies[-1] if accuracies else None,
            best_accuracy=max(accuracies) if accuracies else None,
            test_accuracy=test_accuracy,
            time_to_accuracy_s=self.time_to_accuracy_s if met else None,
            energy_to_accuracy_j=energy["to_accuracy_j"] if met else None,
            samples_per_s=samples / train_time if train_time > 0 else None,
            energy_j=energy["energy"],
            energy_source=self.ledger.meter.source,
            train_energy_j=energy["train"],
            energy_per_sample_j=energy["train"] / samples
            if energy["train"] is not None and samples > 0
            else None,
            energy_by_device=energy["by_device"],
            energy_sources=self.ledger.sources(),
            power=energy["power"],
            power_source=self.ledger.power_source,
            first_iteration_s=self.log.first_step_s(),
            validation_time_s=sum(e.val_time_s for e in epochs) if epochs else None,
            epochs=epochs,
            enforcement=read_enforcement(),
            seeds=self.seeds(),
            world_size=self.env.world_size,
            device=str(self.device),
            versions=versions(),
            host=read_host(str(self.device)),
            steps_per_epoch=self.steps_per_epoch,
            target_met_epoch=met,
            threads=torch.get_num_threads(),
        )


class _First:
    """The first ``n`` batches of a DataLoader: a pilot's last, short epoch."""

    def __init__(self, loader: DataLoader, n: int) -> None:
        self.loader = loader
        self.n = max(0, n)

    def __len__(self) -> int:
        return min(self.n, len(self.loader))

    def __iter__(self) -> Any:
        return itertools.islice(iter(self.loader), self.n)


def _shard_record(epoch: int, indices: list[int]) -> dict[str, Any]:
    digest = hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()
    record: dict[str, Any] = {"epoch": epoch, "count": len(indices), "sha256": digest}
    if epoch == 1:
        record["indices"] = indices
    return record
