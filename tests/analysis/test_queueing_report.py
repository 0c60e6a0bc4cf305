"""Queueing delay in the report: trials that waited in a Kueue queue are listed with their
wait, per trial and in total, and the wait is in no response (``time`` stays the worker's).
A synthetic campaign (no TensorBoard files) whose records gain Kueue's timestamps."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from trainbed.analysis import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.queueing_section import queueing_delays, queueing_section
from trainbed.analysis.reporting.report import write_report

SPEC = SyntheticCampaign(effects={("cpu",): -5.0}, seed=5, replicates=1, write_tb=False)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="module")
def queued(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, float]]:
    """The campaign with trial k queued at 0 and admitted at 10*k s (the last never); the
    first ran beside other work Kueue admitted."""
    root = write_results(tmp_path_factory.mktemp("queued"), SPEC)
    paths = sorted((root / "trials").glob("*/result.json"))
    waits = {}
    for k, path in enumerate(paths):
        data = json.loads(path.read_text())
        data["queued_at"] = _stamp(0)
        if k < len(paths) - 1:
            data["admitted_at"] = _stamp(10 * k)
            waits[path.parent.name] = 10.0 * k
        if k == 0:  # it ran while Kueue had admitted someone else's Job
            data["admitted_beside"] = ["job-urgent-1a2b3"]
        path.write_text(json.dumps(data))
    return root, waits


def test_delays_per_trial(queued: tuple[Path, dict[str, float]]) -> None:
    root, waits = queued
    delays = queueing_delays(load(root).trials).set_index("trial_id")
    assert len(delays) == len(waits) + 1
    for trial_id, wait in waits.items():
        assert delays.loc[trial_id, "wait_s"] == pytest.approx(wait)
    assert delays["wait_s"].isna().sum() == 1, "the never-admitted trial has no wait"


def test_report_lists_the_waits(queued: tuple[Path, dict[str, float]], tmp_path: Path) -> None:
    root, waits = queued
    out = write_report(root, tmp_path / "report")
    text = (out / "index.md").read_text()
    assert "## Queueing (Kueue)" in text
    total = sum(waits.values())
    assert f"{total:.1f} s in total" in text and "1 never admitted" in text
    longest = max(waits, key=waits.get)
    assert f"| {longest} |" in text
    noise = text.split("## Noise", 1)[1].split("\n## ", 1)[0]
    first = min(waits)
    assert f"{first} (beside job-urgent-1a2b3)" in noise, noise
    assert "not part of `time`" in text


def test_no_queue_no_section() -> None:
    trials = pd.DataFrame({"trial_id": ["t1"], "queued_at": [None], "admitted_at": [None]})
    assert queueing_section(trials) == ""
    assert queueing_section(pd.DataFrame({"trial_id": ["t1"]})) == ""
