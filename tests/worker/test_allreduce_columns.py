"""The per-iteration all-reduce columns: what two real gloo ranks record (DDP's gradient
buckets; local SGD's averaging steps), and the analysis reading files with and without them."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.worker.test_processes import run_trial
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.contract.records import ITERATION_COLUMNS, ITERATION_COMM_COLUMNS
from trainbed.worker.datasets import load_dataset
from trainbed.worker.models import build_model


def _param_bytes() -> int:
    data = load_dataset("digits")
    model = build_model("MLP", data.channels, data.size, data.classes, True)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _rows(out: Path, rank: int) -> list[dict[str, str]]:
    with open(out / "iterations" / f"rank-{rank}.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames or ()) == ITERATION_COLUMNS
        return list(reader)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("sync_period", [None, 2], ids=["ddp", "local-sgd-2"])
def test_two_ranks_record_what_they_all_reduce(tmp_path: Path, sync_period: int | None) -> None:
    out = run_trial(tmp_path, world=2, timeout=200, epochs=1, sync_period=sync_period)
    expected = _param_bytes()
    for rank in (0, 1):
        rows = _rows(out, rank)
        assert rows
        for row in rows:
            sent, in_flight = int(row["allreduce_bytes"]), float(row["allreduce_s"])
            averages = sync_period is None or (int(row["global_step"]) - 1) % sync_period == 0
            if averages:
                # DDP's buckets hold every gradient once; local SGD averages every parameter
                assert sent == expected, row
                assert 0 < in_flight <= float(row["compute_s"]), row
                bps = float(row["allreduce_bps"])
                assert bps == pytest.approx(sent * 8 / in_flight, rel=1e-6), row
            else:
                assert sent == 0 and in_flight == 0 and row["allreduce_bps"] == "", row


def test_analysis_reads_files_with_and_without_the_columns(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(iterations=3, write_tb=False, replicates=1))
    trials = sorted((root / "trials").iterdir())
    old = trials[0] / "iterations" / "rank-0.csv"
    assert "allreduce_bytes" not in old.read_text().splitlines()[0]  # written before them
    new = trials[1] / "iterations" / "rank-0.csv"
    frame = pd.read_csv(new)
    frame["allreduce_bytes"], frame["allreduce_s"], frame["allreduce_bps"] = 1000, 0.001, 8e6
    frame.to_csv(new, index=False)
    shutil.copy(new, trials[1] / "iterations" / "rank-1.csv")
    iterations = load(root).iterations
    assert set(ITERATION_COMM_COLUMNS) <= set(iterations.columns)
    by_trial = iterations.groupby("trial_id")["allreduce_bytes"]
    assert math.isnan(by_trial.max()[trials[0].name])  # unknown, not zero
    assert by_trial.max()[trials[1].name] == 1000
    assert len(iterations[iterations.trial_id == trials[1].name]) == 6
