"""TensorBoard output of rank 0: the stable per-epoch scalars and the trial's hparams.

Tags are :data:`trainbed.contract.records.TB_TAGS` (the Fashion-MNIST 2^(4-1) resource study reads
"accuracy per epoch"), the step is the 1-based epoch. The hparams (factor levels as ``level/<name>``
plus the key workload and resource fields) go into the same ``tb/`` directory, so one run in
TensorBoard's HParams view is one trial. Only rank 0 creates a writer; the other ranks get none and
pay nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trainbed.contract.layout import TrialLayout
from trainbed.contract.records import EpochRecord
from trainbed.contract.trial import TrialSpec


def epoch_scalars(record: EpochRecord) -> dict[str, float | None]:
    """The value of every TB_TAGS tag for one epoch (None where the epoch had none)."""
    return {
        "accuracy per epoch": record.val_accuracy,
        "train/loss": record.train_loss,
        "train/accuracy": record.train_accuracy,
        "val/loss": record.val_loss,
        "val/accuracy": record.val_accuracy,
        "test/accuracy": record.test_accuracy,
        "time/epoch_train_s": record.train_time_s,
        "time/epoch_val_s": record.val_time_s,
        "time/epoch_test_s": record.test_time_s,
        "time/elapsed_s": record.elapsed_s,
        "time/data_wait_s": record.data_wait_s,
        "time/compute_s": record.compute_s,
        "throughput/samples_per_s": record.samples_per_s,
    }


def hparams_of(spec: TrialSpec) -> dict[str, bool | int | float | str]:
    """The trial's hparams: key workload/resource fields and every factor level."""
    workload = spec.workload
    target = workload.target_accuracy
    hparams: dict[str, bool | int | float | str] = {
        "trial_id": spec.trial_id,
        "replicate": spec.replicate,
        "dataset": workload.dataset,
        "model": workload.model,
        "epochs": workload.epochs,
        "batch_size": workload.batch_size,
        "optimizer": workload.optimizer,
        "lr": workload.lr,
        "parallelism": workload.parallelism,
        "dataloader_workers": workload.dataloader_workers,
        "sync_period": "ddp" if workload.sync_period is None else workload.sync_period,
        "batch_norm": workload.batch_norm,
        "target_threshold": target.threshold if target else "none",
        "cpu": str(spec.resources.cpu),
        "memory": str(spec.resources.memory),
        "gpu": spec.resources.gpu,
    }
    for name, level in spec.levels.items():
        hparams[f"level/{name}"] = (
            level if isinstance(level, bool | int | float | str) else json.dumps(level)
        )
    return hparams


class TensorBoardLog:
    """Rank 0's SummaryWriter on ``<trial>/tb``; flushed after every epoch."""

    def __init__(self, trial_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer: Any = SummaryWriter(log_dir=str(TrialLayout(trial_dir).tb_dir))

    def epoch(self, record: EpochRecord) -> None:
        for tag, value in epoch_scalars(record).items():
            if value is not None:
                self._writer.add_scalar(tag, value, record.epoch)
        self._writer.flush()

    def close(self, spec: TrialSpec, metrics: dict[str, float | None]) -> None:
        """Write the hparams (with the final metrics; None is left out) and close."""
        known = {f"hparam/{k}": v for k, v in metrics.items() if v is not None}
        self._writer.add_hparams(hparams_of(spec), known, run_name=".")
        self._writer.close()
