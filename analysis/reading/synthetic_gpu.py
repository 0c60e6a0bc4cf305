"""A synthetic GPU campaign: time and energy to accuracy with planted effects, some runs censored.

The analysis of an energy study is checked against the truth without a GPU: a full 2^k design
(by default power limit × batch size × model, the energy-to-accuracy study's factors) is written
by :mod:`synthetic`, then every trial's ``result.json`` gets a time to accuracy and an energy to
accuracy from their own planted models (mean + Σ q·x + noise), an NVML-like ``energy_source``,
and the chosen runs never reach the target: their validation accuracy stays below it and both
to-accuracy responses are null (censored), as the worker writes them.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.contract.layout import ResultsLayout, coded_column

Terms = dict[tuple[str, ...], float]


@dataclass
class SyntheticGpuCampaign:
    name: str = "synthetic-gpu"
    factors: list[tuple[str, list[Any]]] = field(
        default_factory=lambda: [
            ("gpu_power_limit", [200, 700]),
            ("batch_size", [64, 256]),
            ("model", ["resnet18", "resnet50"]),
        ]
    )
    replicates: int = 3
    #: time to accuracy (s): mean and q per term, noise sd
    time_mean: float = 120.0
    time_effects: Terms = field(default_factory=dict)
    time_noise: float = 2.0
    #: energy to accuracy (J): mean and q per term, noise sd
    energy_mean: float = 20000.0
    energy_effects: Terms = field(default_factory=dict)
    energy_noise: float = 200.0
    #: (design point index in standard order, 0-based; replicate, 1-based) of runs that never
    #: reach the target
    censored: list[tuple[int, int]] = field(default_factory=list)
    target: float = 0.85
    #: ``spec.tradeoff`` to write (None: leave it out, the report's default applies)
    tradeoff: list[str] | None = None
    seed: int = 0


def _planted(mean: float, effects: Terms, x: dict[str, int]) -> float:
    return mean + sum(q * float(np.prod([x[f] for f in term])) for term, q in effects.items())


def write_gpu_results(root: Path, spec: SyntheticGpuCampaign) -> Path:
    """Write ``root/<name>`` and return it."""
    base = SyntheticCampaign(
        name=spec.name,
        factors=spec.factors,
        generators={},
        replicates=spec.replicates,
        seed=spec.seed,
        iterations=0,
        write_tb=False,
    )
    out = write_results(root, base)
    layout = ResultsLayout(out)
    campaign = yaml.safe_load(layout.campaign_file.read_text())
    campaign["spec"]["responses"] = ["time_to_accuracy", "energy_to_accuracy", "accuracy"]
    campaign["spec"]["trial"] = {"workload": {"target_accuracy": {"threshold": spec.target}}}
    if spec.tradeoff:
        campaign["spec"]["tradeoff"] = list(spec.tradeoff)
    layout.campaign_file.write_text(yaml.safe_dump(campaign, sort_keys=False))

    names = [n for n, _ in spec.factors]
    points = base.points().tolist()
    censored = set(spec.censored)
    rng = np.random.default_rng(spec.seed + 1)
    with open(layout.design_file, newline="") as handle:
        design = list(csv.DictReader(handle))
    for row in design:
        x = {n: int(row[coded_column(n)]) for n in names}
        point = points.index([x[n] for n in names])
        never = (point, int(row["replicate"])) in censored
        time = _planted(spec.time_mean, spec.time_effects, x) + rng.normal(0, spec.time_noise)
        energy = _planted(spec.energy_mean, spec.energy_effects, x)
        energy += rng.normal(0, spec.energy_noise)
        path = layout.trial(row["trial_id"]).result_file
        result = json.loads(path.read_text())
        accuracy = spec.target - 0.05 if never else spec.target + 0.05
        for epoch in result["epochs"]:
            epoch["val_accuracy"] = min(epoch["val_accuracy"], accuracy)
        result.update(
            final_accuracy=accuracy,
            best_accuracy=accuracy,
            time_to_accuracy_s=None if never else float(time),
            energy_to_accuracy_j=None if never else float(energy),
            energy_j=float(energy) * 1.2,
            train_energy_j=float(energy) * 0.9,
            energy_source="nvml: GPU 0 (synthetic)",
            energy_by_device={"gpu": float(energy) * 1.2, "cpu": None},
            device="cuda:0",
        )
        path.write_text(json.dumps(result))
    return out
