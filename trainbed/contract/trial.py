"""The trial spec: what one trial trains and under which limits (contract).

``spec.trial`` of a campaign file and the ``workload``/``resources`` keys of TRIAL.json are these
models, so a campaign's defaults, a factor's dotted ``target`` and the worker all agree on one
schema. They live in the contract (:mod:`trainbed.contract`), which the worker and the
orchestrator both import and which imports neither; the campaign spec builds on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trainbed.contract.layout import TrialLayout
from trainbed.contract.quantity import bandwidth_bps, latency_s, parse_quantity
from trainbed.contract.record_file import read_model

Dataset = Literal["mnist", "fashion-mnist", "cifar10", "digits", "synthetic"]
Model = Literal[
    "FashionMNISTCNN",
    "FashionMNISTResNet",
    "LeNet5",
    "MLP",
    "ResNet18",
    "ResNet34",
    "ResNet50",
]
Optimizer = Literal["sgd", "sgd-nesterov", "adam", "adagrad", "adadelta"]

DATASETS: tuple[str, ...] = Dataset.__args__  # type: ignore[attr-defined]
MODELS: tuple[str, ...] = Model.__args__  # type: ignore[attr-defined]
OPTIMIZERS: tuple[str, ...] = Optimizer.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    """Unknown keys are errors: a typo in a campaign file must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TargetAccuracy(_Strict):
    """Train-to-accuracy (the energy-to-accuracy study's rule): stop once validation accuracy
    holds the threshold."""

    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        description="Validation accuracy to reach, as a fraction in (0, 1]."
    )
    patience: Annotated[int, Field(ge=1)] = Field(
        1, description="Consecutive epochs at or above the threshold before the target counts."
    )
    max_epochs: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="Hard cap on epochs when chasing the target; null means the workload's epochs.",
    )


def epochs_to_run(epochs: int, max_epochs: int | None, has_target: bool) -> int:
    """The epoch budget: with a target, ``max_epochs`` (or ``epochs``) caps the chase.

    The worker trains this many epochs at most and the pilot predicts from it, so the rule lives
    here, beside :class:`TargetAccuracy`, where both read it."""
    if has_target and max_epochs is not None:
        return max_epochs
    return epochs


class Workload(_Strict):
    """What a trial trains. Every key can be a factor's target (``workload.<key>``)."""

    dataset: Dataset = Field("digits", description="Training data set.")
    model: Model = Field("MLP", description="Network architecture.")
    epochs: Annotated[int, Field(ge=1)] = Field(5, description="Epochs to train.")
    batch_size: Annotated[int, Field(ge=1)] = Field(64, description="Per-worker mini-batch size.")
    optimizer: Optimizer = Field("sgd", description="Optimizer.")
    lr: Annotated[float, Field(gt=0.0)] = Field(0.01, description="Learning rate.")
    parallelism: Annotated[int, Field(ge=1, le=1024)] = Field(
        1, description="World size: the number of DDP ranks."
    )
    dataloader_workers: Annotated[int, Field(ge=0, le=64)] = Field(
        0, description="DataLoader worker processes per rank."
    )
    sync_period: int | None = Field(
        None,
        description=(
            "Local-SGD period k in iterations (the sync-period study's k): null is plain DDP "
            "(gradient all-reduce every step), -1 averages the models only at the end, k>=1 "
            "averages every k steps."
        ),
    )
    batch_norm: bool = Field(True, description="Use batch normalisation where the model has it.")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="Base seed of every RNG.")
    target_accuracy: TargetAccuracy | None = Field(
        None, description="Stop early once this validation accuracy holds; null trains all epochs."
    )
    validation_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = Field(
        0.1, description="Share of the training data held out for validation, with a fixed seed."
    )

    @field_validator("sync_period")
    @classmethod
    def _sync_period(cls, value: int | None) -> int | None:
        if value is not None and value != -1 and value < 1:
            raise ValueError("must be null (plain DDP), -1 (average at the end) or >= 1")
        return value


Quantity = str | int | float


class Resources(_Strict):
    """The limits a trial runs under; requests equal limits in pods."""

    cpu: Quantity = Field("1", description="CPU limit, a Kubernetes quantity: 750m, 1.5, 2.")
    memory: Quantity = Field("2Gi", description="Memory limit, a Kubernetes quantity: 1.5Gi, 3G.")
    gpu: Annotated[int, Field(ge=0)] = Field(0, description="GPUs per rank (nvidia.com/gpu).")
    bandwidth: Quantity | None = Field(
        None,
        description=(
            "Each rank's egress rate in bits/s, a Kubernetes quantity as the "
            "kubernetes.io/egress-bandwidth annotation takes it: 10M, 1G. Null: no limit."
        ),
    )
    latency: Quantity | None = Field(
        None,
        description=(
            "Added one-way delay of every packet between ranks: 5ms, 250us. Null: none. "
            "Local backend only (Kubernetes cannot add delay under restricted Pod Security)."
        ),
    )
    gpu_power_limit: Annotated[float, Field(gt=0)] | None = Field(
        None,
        description=(
            "Power limit of each of the trial's GPUs, watts (NVML's power management limit), "
            "set before the trial, read back and restored after it. Null: left as it is. "
            "Local backend only, and only where this process may set it (root)."
        ),
    )
    gpu_clock: Annotated[int, Field(gt=0)] | None = Field(
        None,
        description=(
            "SM clock each of the trial's GPUs is locked at, MHz (nvidia-smi -lgc N,N), set "
            "before the trial, read back and reset after it. Null: left to the driver. "
            "Local backend only, and only where this process may set it (root)."
        ),
    )

    @field_validator("cpu", "memory")
    @classmethod
    def _quantity(cls, value: Quantity) -> str:
        amount = parse_quantity(value)
        if amount <= 0:
            raise ValueError(f"{value!r} must be positive")
        return str(value)

    @field_validator("cpu")
    @classmethod
    def _cpu_granularity(cls, value: str) -> str:
        if parse_quantity(value) < parse_quantity("1m"):
            raise ValueError(f"{value!r} is below Kubernetes' CPU granularity of 1m")
        return value

    @field_validator("bandwidth")
    @classmethod
    def _bandwidth(cls, value: Quantity | None) -> str | None:
        if value is None:
            return None
        bandwidth_bps(value)
        return str(value)

    @field_validator("latency")
    @classmethod
    def _latency(cls, value: Quantity | None) -> str | None:
        if value is None:
            return None
        latency_s(value)
        return str(value).strip()


class TrialSettings(_Strict):
    """``spec.trial``: the defaults every trial starts from."""

    workload: Workload = Field(default_factory=Workload)
    resources: Resources = Field(default_factory=Resources)


class TrialSpec(_Strict):
    """TRIAL.json: one trial as run, handed to every rank (contract)."""

    campaign: str = Field(description="Campaign name.")
    trial_id: str = Field(description="Deterministic trial ID from the design.")
    seed: Annotated[int, Field(ge=0)] = Field(description="The trial's seed, recorded.")
    workload: Workload
    resources: Resources
    levels: dict[str, Any] = Field(
        default_factory=dict, description="Factor name -> level as written, for hparams."
    )
    replicate: int = Field(1, ge=1, description="Replicate number, 1-based.")
    timeout_s: float | None = Field(
        None, description="Wall-clock bound of the trial; the executor enforces it."
    )
    pilot_iterations: Annotated[int, Field(ge=2)] | None = Field(
        None,
        description=(
            "A pilot run (`trainbed pilot`): train only this many iterations in all (the last "
            "epoch cut short), validating after each epoch as usual; null trains the workload."
        ),
    )


def read_trial_spec(trial_dir: Path) -> TrialSpec | None:
    """The trial's ``trial.json`` as run, or ``None`` where there is none; a file that is not
    a trial spec is a :class:`RecordError` naming the field."""
    return read_model(TrialLayout(trial_dir).spec_file, TrialSpec)
