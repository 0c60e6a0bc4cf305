"""``spec.cost`` (contract): the prices that turn a trial into money, and the rule that does it.

The rule is OpenCost's allocation rule for a pod: what it requested (requests = limits in
trainbed) times how long it ran, priced per CPU-hour, per GiB-hour of memory and per GPU-hour,
plus the energy it used times the price of a kWh where a meter measured it. A trial's pods are
its ranks, so its cost is the sum over ranks of (cores · p_cpu + GiB · p_mem + GPUs · p_gpu) ·
hours the rank ran, plus ``energy_j`` / 3.6e6 · p_kWh. Energy nothing measured adds nothing (it
is never invented), and the analysis says so. The ``cost`` response is in the currency named
here; the analysis derives it (:mod:`trainbed.analysis.models.cost`), no worker writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

#: Joules in one kilowatt-hour.
JOULES_PER_KWH = 3.6e6
#: Bytes in one GiB, the unit memory is priced in (OpenCost's "RAM GiB-hour").
GIB = 1024**3

_Price = Annotated[float, Field(ge=0)]


class CostSpec(BaseModel):
    """Prices of what a trial's pods hold, in ``currency``; a missing price counts as 0."""

    model_config = ConfigDict(extra="forbid")

    currency: str = Field(
        "USD", min_length=1, max_length=12, description="The unit of the cost response: USD, EUR."
    )
    cpu_hour: _Price = Field(0.0, description="Price of one CPU core (request) for one hour.")
    memory_gib_hour: _Price = Field(0.0, description="Price of one GiB of memory for one hour.")
    gpu_hour: _Price = Field(0.0, description="Price of one GPU for one hour.")
    kwh: _Price = Field(0.0, description="Price of one kWh of measured energy.")


@dataclass(frozen=True)
class PodUsage:
    """One rank's pod: what it requested and how long it ran (seconds)."""

    cpu_cores: float
    memory_bytes: int
    gpus: int
    seconds: float


@dataclass(frozen=True)
class TrialCost:
    """A trial's cost and its parts, in the currency of the prices."""

    cpu: float
    memory: float
    gpu: float
    energy: float | None  # None: nothing measured the energy (it adds nothing)

    @property
    def total(self) -> float:
        return self.cpu + self.memory + self.gpu + (self.energy or 0.0)


def trial_cost(pods: Sequence[PodUsage], energy_j: float | None, prices: CostSpec) -> TrialCost:
    """OpenCost's allocation for one trial: requests × each pod's run time, plus energy × its
    price where measured. Pure."""
    cpu = sum(p.cpu_cores * p.seconds for p in pods) / 3600 * prices.cpu_hour
    memory = sum(p.memory_bytes / GIB * p.seconds for p in pods) / 3600 * prices.memory_gib_hour
    gpu = sum(p.gpus * p.seconds for p in pods) / 3600 * prices.gpu_hour
    energy = None if energy_j is None else energy_j / JOULES_PER_KWH * prices.kwh
    return TrialCost(cpu=cpu, memory=memory, gpu=gpu, energy=energy)
