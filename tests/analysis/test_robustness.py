"""The analysis reads a results directory from result.json alone; everything else is optional.

Each case here once crashed ``trainbed analyze`` with a traceback. Each must now give a report
(exit 0) or one clear line (exit 2), never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from trainbed.analysis import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.report import write_report
from trainbed.contract.errors import ResultsError

EFFECTS = {("cpu",): -5.0, ("epochs",): 8.0}


def _analyze(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "analyze", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "TRAINBED_NO_PROGRESS": "1"},
    )


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]


def _edit_results(root: Path, edit) -> None:
    for path in sorted((root / "trials").glob("*/result.json")):
        data = json.loads(path.read_text())
        path.write_text(json.dumps(edit(data)))


def test_no_event_files_anywhere(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, write_tb=False, seed=2))
    proc = _analyze(str(root))
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert (root / "report" / "index.html").exists()
    assert (root / "report" / "anova_time.csv").exists()


def test_results_without_per_epoch_records_or_iterations(tmp_path: Path) -> None:
    spec = SyntheticCampaign(effects=EFFECTS, write_tb=False, iterations=0, seed=3)
    root = write_results(tmp_path, spec)
    _edit_results(root, lambda d: {k: v for k, v in d.items() if k != "epochs"})
    proc = _analyze(str(root))
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    effects = pd.read_csv(root / "report" / "effects_time.csv")
    assert "cpu" in set(effects["term"])


def test_minimal_result_files_written_by_another_tool(tmp_path: Path) -> None:
    """Only status and the responses: every other field is optional."""
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, write_tb=False, seed=4))
    shutil.rmtree(root / "trials" / next(iter(os.listdir(root / "trials"))) / "iterations")
    _edit_results(
        root,
        lambda d: {"status": d["status"], "wall_time_s": d["wall_time_s"], "final_accuracy": 0.5},
    )
    report = write_report(root)
    text = (report / "index.md").read_text()
    assert "## time" in text
    assert (report / "anova_time.csv").exists()


def test_a_design_csv_missing_a_column_names_it(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=5))
    design = pd.read_csv(root / "design.csv")
    design.drop(columns=["memory_coded"]).to_csv(root / "design.csv", index=False)
    with pytest.raises(ResultsError, match="memory_coded"):
        load(root)
    proc = _analyze(str(root))
    _no_traceback(proc)
    assert proc.returncode == 2
    assert "memory_coded" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


@pytest.mark.parametrize("what", ["empty folder", "missing folder", "a file"])
def test_not_a_results_directory_is_one_line_and_exit_2(tmp_path: Path, what: str) -> None:
    target = tmp_path / "nothing"
    if what == "empty folder":
        target.mkdir()
    elif what == "a file":
        target.write_text("hello")
    proc = _analyze(str(target))
    _no_traceback(proc)
    assert proc.returncode == 2, proc.stderr
    assert "not a results directory" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_relative_results_path_from_another_folder(tmp_path: Path) -> None:
    root = write_results(tmp_path / "out", SyntheticCampaign(effects=EFFECTS, seed=6))
    proc = _analyze(os.path.relpath(root, tmp_path), cwd=tmp_path)
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert (root / "report" / "index.md").exists()


def test_no_trial_succeeded_still_lists_every_trial_and_why(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, write_tb=False, seed=7))
    _edit_results(
        root,
        lambda d: {
            "status": "failed",
            "reason": f"rank 0 exited 1: boom in {d['trial_id']}",
            "trial_id": d["trial_id"],
        },
    )
    proc = _analyze(str(root))
    _no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    text = (root / "report" / "index.md").read_text()
    assert "No trial succeeded" in text
    for trial_id in pd.read_csv(root / "design.csv")["trial_id"]:
        assert f"boom in {trial_id}" in text


def test_a_trial_folder_with_an_unreadable_result(tmp_path: Path) -> None:
    root = write_results(tmp_path, SyntheticCampaign(effects=EFFECTS, seed=8))
    first = sorted((root / "trials").glob("*/result.json"))[0]
    first.write_text('{"status": "succ')
    with pytest.warns(UserWarning, match=r"result\.json: not valid JSON"):
        report = write_report(root)
    text = (report / "index.md").read_text()
    assert "## Trials that could not be read" in text
    assert first.parent.name in text.split("## Trials that could not be read")[1]
