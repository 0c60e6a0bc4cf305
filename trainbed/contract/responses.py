"""The response vocabulary (contract): each response's name, the ``result.json`` field it reads,
its unit and what it counts.

The campaign spec validates ``spec.responses`` against these names, the CLI offers them, and the
analysis and the report take their fields, units and descriptions from here, so a response is
spelled once. Times are seconds, accuracies fractions in [0, 1], energy joules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args


@dataclass(frozen=True)
class ResponseInfo:
    """A response: the ``result.json`` field it reads, its unit, and what it counts.

    ``censored`` marks a response that is missing (not zero) when the run never got there, as
    time to accuracy is for a run that never reached the target. ``derived`` marks one that no
    worker writes: the analysis computes it (``field`` is then empty), as ``cost`` from
    ``spec.cost``.
    """

    field: str
    unit: str
    description: str
    censored: bool = False
    derived: bool = False


Response = Literal[
    "accuracy",
    "time",
    "train_time",
    "time_to_accuracy",
    "energy",
    "energy_to_accuracy",
    "throughput",
    "train_energy",
    "energy_per_sample",
    "cost",
]

RESPONSES: dict[str, ResponseInfo] = {
    "accuracy": ResponseInfo(
        "final_accuracy",
        "fraction",
        "final validation accuracy (the last epoch's), a fraction in [0, 1]",
    ),
    "time": ResponseInfo(
        "wall_time_s",
        "s",
        "wall time from process start to stop: includes start-up (imports, data loading, "
        "rendezvous) and validation, not just training",
    ),
    "train_time": ResponseInfo(
        "train_time_s",
        "s",
        "train time: the sum of the per-epoch train durations (no start-up, no validation)",
    ),
    "time_to_accuracy": ResponseInfo(
        "time_to_accuracy_s",
        "s",
        "time to accuracy: the worker's clock from the start of training to the end of the "
        "validation that met the target (censored when never met)",
        censored=True,
    ),
    "energy": ResponseInfo(
        "energy_j", "J", "energy of the trial in joules, where something could measure it"
    ),
    "energy_to_accuracy": ResponseInfo(
        "energy_to_accuracy_j",
        "J",
        "energy to accuracy: joules from the start of training to the validation that met the "
        "target, test-set passes excluded (censored when never met; null without a meter)",
        censored=True,
    ),
    "throughput": ResponseInfo(
        "samples_per_s", "samples/s", "training throughput in samples per second"
    ),
    "train_energy": ResponseInfo(
        "train_energy_j",
        "J",
        "energy of the training epochs alone (no start-up, validation or test passes), joules",
    ),
    "energy_per_sample": ResponseInfo(
        "energy_per_sample_j", "J/sample", "training energy per training sample, joules"
    ),
    "cost": ResponseInfo(
        "",
        "currency",
        "cost of the trial in the currency spec.cost names: each rank's requests times its run "
        "time at the CPU-, GiB- and GPU-hour prices, plus measured energy at the kWh price "
        "(OpenCost's allocation rule; derived by the analysis)",
        derived=True,
    ),
}

#: The names a campaign file may list under ``spec.responses``, in this order.
RESPONSE_NAMES: tuple[str, ...] = get_args(Response)
assert set(RESPONSE_NAMES) == set(RESPONSES), "the Literal and the table name the same responses"

#: Response name -> ``result.json`` field, for the responses a worker writes (not ``derived``).
RESPONSE_FIELDS: dict[str, str] = {
    name: info.field for name, info in RESPONSES.items() if not info.derived
}
#: The responses the analysis derives (``cost``).
DERIVED_RESPONSES: tuple[str, ...] = tuple(n for n, info in RESPONSES.items() if info.derived)
