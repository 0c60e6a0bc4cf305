"""Local SGD (the sync-period study's k) with two real gloo ranks: torch's averagers, whole-set
evaluation by rank 0, and the timing columns still per iteration."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.worker.test_processes import run_trial
from trainbed.contract.records import read_result


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("sync_period", [2])
def test_local_sgd_two_ranks(tmp_path: Path, sync_period: int) -> None:
    out = run_trial(tmp_path, world=2, epochs=2, sync_period=sync_period, lr=0.05)
    result = read_result(out)
    assert result is not None and result.status == "succeeded", result
    assert result.epochs_run == 2 and result.world_size == 2
    assert result.test_accuracy is not None and result.test_accuracy > 0.5
    for epoch in result.epochs:
        assert epoch.val_accuracy is not None and 0.0 <= epoch.val_accuracy <= 1.0
        assert epoch.test_time_s is not None and 0 < epoch.test_time_s <= epoch.val_time_s
    steps = []
    for rank in (0, 1):
        with open(out / "iterations" / f"rank-{rank}.csv", newline="") as handle:
            steps.append(len(list(csv.DictReader(handle))))
    assert steps[0] == steps[1] > 0
