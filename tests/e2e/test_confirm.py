"""From effects to a decision, end to end with real DDP training: the quickstart, ``analyze
--goal``, ``predict``, then ``confirm --runs 3`` as a new block; the report shows the
confirmation and its verdict."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import run_cli
from trainbed.contract.confirmation import read_confirmation
from trainbed.contract.layout import ResultsLayout

# eight 2-rank trials, three more, and three reports on a 2-core machine others share
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
GOAL = "min time s.t. accuracy >= 0.9"


def test_quickstart_goal_predict_and_confirm(tmp_path: Path) -> None:
    quickstart = Path(__file__).parents[2] / "experiments" / "quickstart.yaml"
    run_cli("run", str(quickstart), "--out", str(tmp_path), "--no-analyze", timeout=1800)
    root = tmp_path / "quickstart"
    run_cli("analyze", str(root), "--goal", GOAL, timeout=900)
    report = (root / "report" / "index.md").read_text()
    assert "## Recommendation" in report and f"Goal: `{GOAL}` (from --goal)" in report
    chosen = json.loads((root / "report" / "recommendation.json").read_text())
    assert chosen["goal"] == GOAL and chosen["best"]["levels"]

    started = time.perf_counter()
    predicted = run_cli("predict", str(root), "--set", "cpu=1", "--set", "batch_size=64", "--json")
    assert time.perf_counter() - started < 30  # start-up included, on a loaded machine
    rows = json.loads(predicted.stdout)["predictions"]
    assert {"accuracy", "time"} <= {r["response"] for r in rows}
    refused = run_cli("predict", str(root), "--set", "cpu=4", check=False)
    assert refused.returncode == 2 and "outside the levels run" in refused.stderr

    design_before = (root / "design.csv").read_text()
    run_cli("confirm", str(root), "--runs", "3", timeout=1800)
    record = read_confirmation(ResultsLayout(root).confirmation_file)
    assert record is not None and len(record.blocks) == 1
    block = record.blocks[0]
    assert block.levels == chosen["best"]["levels"] and len(block.trial_ids) == 3
    layout = ResultsLayout(root)
    for trial_id in block.trial_ids:
        result = json.loads(layout.trial(trial_id).result_file.read_text())
        assert result["status"] == "succeeded"
        spec = json.loads(layout.trial(trial_id).spec_file.read_text())
        assert spec["levels"] == block.levels  # the same limits as the design's runs there
    assert (root / "design.csv").read_text() == design_before  # kept out of the model's fit

    report = (root / "report" / "index.md").read_text()
    section = report[report.index("## Confirmation") :]
    assert "| time | s |" in section and "PI of the mean" in section
    assert any(
        verdict in section
        for verdict in ("**Confirmed**", "**Not confirmed**", "**Not confirmed, and not decided**")
    )
