"""Synthetic results directories in the contract's layout, with known effects.

Tests and benchmarks use them to check the analysis against the truth, and they need no worker
run. Responses follow y = mean + Σ q_term · x_term + block shift + noise over a two-level
(fractional) factorial, or over any given ±1 matrix (a screening design); fold-overs add blocks
as ``trainbed augment`` does (each reverses every earlier run on the folded factors), with
design.csv's ``block`` column. Per-epoch TensorBoard scalars and per-iteration timings are
written like the worker's.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from trainbed.contract.env import API_VERSION
from trainbed.contract.layout import BLOCK_COLUMN, DESIGN_COLUMNS, ResultsLayout, coded_column
from trainbed.contract.letters import FACTOR_LETTERS
from trainbed.contract.records import ITERATION_BASE_COLUMNS, RESULT_SCHEMA


@dataclass
class SyntheticCampaign:
    name: str = "synthetic"
    factors: list[tuple[str, list[Any]]] = field(
        default_factory=lambda: [
            ("cpu", ["750m", "1500m"]),
            ("memory", ["1.5Gi", "3Gi"]),
            ("network", ["FashionMNISTCNN", "FashionMNISTResNet"]),
            ("epochs", [5, 10]),
        ]
    )
    #: generated factor index -> base factor indices whose product defines it (D = ABC)
    generators: dict[int, list[int]] = field(default_factory=lambda: {3: [0, 1, 2]})
    replicates: int = 4
    mean: float = 100.0
    #: term (tuple of factor names) -> q
    effects: dict[tuple[str, ...], float] = field(default_factory=dict)
    noise: float = 1.0
    response_field: str = "wall_time_s"
    seed: int = 0
    epochs: int = 5
    tags: tuple[str, ...] = (
        "accuracy per epoch",
        "train/loss",
        "val/accuracy",
        "time/epoch_train_s",
        "throughput/samples_per_s",
    )
    iterations: int = 20
    write_tb: bool = True
    #: the first block's points as a ±1 matrix (rows x factors), e.g. a Plackett-Burman design;
    #: when given, ``generators`` are ignored and the campaign's design type is ``design_type``
    matrix: np.ndarray | None = None
    design_type: str = "screening"
    #: fold-overs in order, each ``full`` or a factor's name: one more block each
    foldover: list[str] = field(default_factory=list)
    #: block number (1-based) -> shift added to that block's responses
    block_effects: dict[int, float] = field(default_factory=dict)
    #: further result.json fields with planted effects of their own: field -> (mean, effects,
    #: noise), e.g. ``{"final_accuracy": (0.9, {("batch_size",): -0.02}, 0.002)}``
    planted: dict[str, tuple[float, dict[tuple[str, ...], float], float]] = field(
        default_factory=dict
    )

    @property
    def kind(self) -> str:
        if self.matrix is not None:
            return self.design_type
        return "fractional" if self.generators else "full"

    def blocks(self) -> list[np.ndarray]:
        """The first block's points, then each fold-over of everything before it."""
        names = [n for n, _ in self.factors]
        out = [self.points()]
        for fold in self.foldover:
            signs = np.array([-1 if fold in ("full", name) else 1 for name in names], dtype=int)
            out.append(np.vstack(out) * signs)
        return out

    def points(self) -> np.ndarray:
        if self.matrix is not None:
            return np.asarray(self.matrix, dtype=int)
        k = len(self.factors)
        base = [i for i in range(k) if i not in self.generators]
        rows = []
        for combo in itertools.product([-1, 1], repeat=len(base)):
            row = np.zeros(k, dtype=int)
            row[base] = combo[::-1]  # the first factor changes fastest
            for target, word in self.generators.items():
                row[target] = int(np.prod(row[word]))
            rows.append(row)
        return np.array(rows)


def _tb(directory: Path, tags: tuple[str, ...], epochs: int, rng: np.random.Generator) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(directory))
    for step in range(1, epochs + 1):
        values = [
            summary_pb2.Summary.Value(tag=tag, simple_value=float(rng.random())) for tag in tags
        ]
        writer.add_event(
            event_pb2.Event(
                wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=values)
            )
        )
    writer.close()


def write_results(root: Path, spec: SyntheticCampaign) -> Path:
    """Write ``root/<name>`` and return it; y values go into ``spec.response_field``."""
    rng = np.random.default_rng(spec.seed)
    layout = ResultsLayout.under(Path(root), spec.name)
    out = layout.root
    layout.trials_dir.mkdir(parents=True, exist_ok=True)
    names = [n for n, _ in spec.factors]
    letters = FACTOR_LETTERS
    campaign = {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": spec.name},
        "spec": {
            "design": {
                "type": spec.kind,
                "replicates": spec.replicates,
                "seed": spec.seed,
                **(
                    {
                        "generators": [
                            f"{letters[t]} = {''.join(letters[i] for i in w)}"
                            for t, w in spec.generators.items()
                        ]
                    }
                    if spec.kind == "fractional"
                    else {}
                ),
                **({"foldover": list(spec.foldover)} if spec.foldover else {}),
            },
            "factors": [
                {"name": n, "target": f"workload.{n}", "levels": lv} for n, lv in spec.factors
            ],
            "responses": ["accuracy", "time", "throughput"],
        },
    }
    layout.campaign_file.write_text(yaml.safe_dump(campaign, sort_keys=False))
    blocks = spec.blocks()
    points = np.vstack(blocks)
    runs: list[tuple[int, int, int]] = []  # (replicate, point, block), in run order
    start = 0
    for b, block in enumerate(blocks, start=1):
        in_block = [
            (rep, start + p, b) for rep in range(1, spec.replicates + 1) for p in range(len(block))
        ]
        runs += [in_block[i] for i in rng.permutation(len(in_block))]
        start += len(block)
    header = [*DESIGN_COLUMNS, *([BLOCK_COLUMN] if len(blocks) > 1 else [])]
    for n in names:
        header += [n, coded_column(n)]
    with open(layout.design_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for run_order, (rep, p, b) in enumerate(runs, start=1):
            trial_id = f"t{rep:02d}{p:03d}{spec.seed:05d}"
            row: list[Any] = [trial_id, run_order, rep, *([b] if len(blocks) > 1 else [])]
            for j, (_, levels) in enumerate(spec.factors):
                row += [levels[(points[p, j] + 1) // 2], int(points[p, j])]
            writer.writerow(row)
            x = dict(zip(names, points[p], strict=True))
            y = spec.mean + spec.block_effects.get(b, 0.0)
            y += sum(q * np.prod([x[f] for f in term]) for term, q in spec.effects.items())
            y += rng.normal(0, spec.noise)
            files = layout.trial(trial_id)
            files.root.mkdir(parents=True, exist_ok=True)
            epochs = [
                {
                    "epoch": e,
                    "train_time_s": 1.0 + 0.1 * e,
                    "val_time_s": 0.2,
                    "val_accuracy": 0.5 + 0.08 * e,
                    "elapsed_s": sum(1.0 + 0.1 * k + 0.25 for k in range(1, e + 1)),
                    "train_loss": 1.0 / e,
                }
                for e in range(1, spec.epochs + 1)
            ]
            result = {
                "schema": RESULT_SCHEMA,
                "campaign": spec.name,
                "trial_id": trial_id,
                "status": "succeeded",
                "reason": "",
                "wall_time_s": 10.0,
                "train_time_s": sum(e["train_time_s"] for e in epochs),
                "epochs_run": spec.epochs,
                "final_accuracy": 0.9,
                "best_accuracy": 0.9,
                "test_accuracy": 0.88,
                "time_to_accuracy_s": 3.0,
                "samples_per_s": 1000.0,
                "energy_j": None,
                "energy_source": "none: synthetic",
                "validation_time_s": 1.0,
                "epochs": epochs,
                "enforcement": {"mode": "synthetic"},
                "world_size": 1,
            }
            result[spec.response_field] = float(y)
            for name, (mean, effects, noise) in spec.planted.items():
                value = mean + sum(q * np.prod([x[f] for f in term]) for term, q in effects.items())
                result[name] = float(value + rng.normal(0, noise))
            files.result_file.write_text(json.dumps(result))
            if spec.iterations:
                files.iterations_dir.mkdir(exist_ok=True)
                with open(files.iterations_file(0), "w", newline="") as handle:
                    it_writer = csv.writer(handle)
                    # as a file written before the all-reduce columns: readers accept both
                    it_writer.writerow(ITERATION_BASE_COLUMNS)
                    for g in range(1, spec.iterations + 1):
                        wait, compute = 0.001, 0.01 + (0.05 if g == 1 else 0.0)
                        it_writer.writerow([0, 1, g, g, 32, wait, compute, wait + compute])
            if spec.write_tb:
                _tb(files.tb_dir, spec.tags, spec.epochs, rng)
    return out
