"""Per-iteration timings kept in preallocated memory and written once, after training.

Instrumentation must not change what it measures: the hot loop only reads ``perf_counter`` and
stores a few floats in a numpy row; no file I/O and, on CPU, no synchronisation. On GPU the
data wait and compute come from CUDA events (:mod:`~trainbed.worker.epoch_loop`), or the host
would measure kernel launches only. The trial's first iteration (CUDA context warm-up, cuDNN
autotuning, allocator growth) is ``global_step == 1`` and ``result.first_iteration_s``, so the
analysis can keep it apart from the rest.
The step's all-reduce bytes and in-flight seconds come from
:class:`~trainbed.worker.allreduce_meter.AllreduceMeter`; the achieved bandwidth is derived from
them when the file is written.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from trainbed.contract.records import ITERATION_COLUMNS
from trainbed.worker.allreduce_meter import bus_bps


class IterationLog:
    """Rows of ITERATION_COLUMNS: (rank, epoch, step, global_step, samples, data_wait_s,
    compute_s, step_s, allreduce_bytes, allreduce_s, allreduce_bps)."""

    def __init__(self, rank: int, capacity: int = 1024, world_size: int = 1) -> None:
        self.rank = rank
        self.world_size = world_size
        self._rows = np.zeros((capacity, len(ITERATION_COLUMNS)), dtype=np.float64)
        self._n = 0

    def reserve(self, extra: int) -> None:
        """Grow before an epoch starts, never inside it."""
        needed = self._n + extra
        if needed > len(self._rows):
            grown = np.zeros((max(needed, 2 * len(self._rows)), self._rows.shape[1]))
            grown[: self._n] = self._rows[: self._n]
            self._rows = grown

    def add(
        self,
        epoch: int,
        step: int,
        global_step: int,
        samples: int,
        data_wait: float,
        compute: float,
        step_time: float,
        allreduce_bytes: int = 0,
        allreduce_s: float = 0.0,
    ) -> None:
        row = self._rows[self._n]
        row[0] = self.rank
        row[1] = epoch
        row[2] = step
        row[3] = global_step
        row[4] = samples
        row[5] = data_wait
        row[6] = compute
        row[7] = step_time
        row[8] = allreduce_bytes
        row[9] = allreduce_s
        self._n += 1

    @property
    def rows(self) -> np.ndarray:
        return self._rows[: self._n]

    def epoch_sums(self, epoch: int) -> tuple[float, float]:
        """(data wait, compute) seconds of one epoch."""
        rows = self.rows[self.rows[:, 1] == epoch]
        return float(rows[:, 5].sum()), float(rows[:, 6].sum())

    def first_step_s(self) -> float | None:
        return float(self.rows[0, 7]) if self._n else None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(ITERATION_COLUMNS)
            for row in self.rows:
                bps = bus_bps(row[8], row[9], self.world_size)
                writer.writerow(
                    [
                        int(row[0]),
                        int(row[1]),
                        int(row[2]),
                        int(row[3]),
                        int(row[4]),
                        f"{row[5]:.9f}",
                        f"{row[6]:.9f}",
                        f"{row[7]:.9f}",
                        int(row[8]),
                        f"{row[9]:.9f}",
                        "" if bps is None else f"{bps:.0f}",
                    ]
                )
