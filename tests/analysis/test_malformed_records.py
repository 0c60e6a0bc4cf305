"""Malformed records: the analysis reads every record through the contract's models, names a
bad one in one line (trial, file, field, what was wrong) and analyses the other trials.

One campaign is written once per module (no TensorBoard files, so it is fast); each case
damages a copy of it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from trainbed.analysis import load
from trainbed.analysis.reading.load import UNREADABLE
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.contract.errors import ResultsError
from trainbed.contract.layout import ResultsLayout

SPEC = SyntheticCampaign(effects={("cpu",): -5.0}, seed=3, replicates=1, write_tb=False)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(tmp_path_factory.mktemp("pristine"), SPEC)


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / pristine.name))


def _first(root: Path) -> Path:
    return sorted((root / "trials").glob("*/result.json"))[0]


def _edit(path: Path, **fields: object) -> None:
    data = json.loads(path.read_text())
    data.update(fields)
    path.write_text(json.dumps(data))


#: case -> (how the first trial's result.json is damaged, the field named, words of the problem)
CASES = {
    "a string where an object belongs": (
        lambda p: _edit(p, enforcement="cgroup-v1"),
        "enforcement",
        "should be an object",
    ),
    "a number as text": (lambda p: _edit(p, wall_time_s="12.5"), "wall_time_s", "valid number"),
    "an unknown status": (lambda p: _edit(p, status="exploded"), "status", "'succeeded'"),
    "a truncated file": (
        lambda p: p.write_text(p.read_text()[:40]),
        "",
        "not valid JSON",
    ),
    "an empty file": (lambda p: p.write_text(""), "", "empty file"),
    "bytes that are not text": (lambda p: p.write_bytes(b"\xff\xfe\x00{"), "", "not UTF-8 text"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_malformed_result_is_named_in_one_line_and_the_rest_are_analysed(
    root: Path, case: str
) -> None:
    damage, field, problem = CASES[case]
    first = _first(root)
    trial_id = first.parent.name
    damage(first)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = load(root)
    lines = [str(w.message) for w in caught if trial_id in str(w.message)]
    assert len(lines) == 1, lines
    line = lines[0]
    assert "\n" not in line
    assert line.startswith(f"trial {trial_id}: result.json: ")
    assert (f"field {field}: " in line) if field else ("field" not in line)
    assert problem in line
    assert [u.trial_id for u in results.unreadable] == [trial_id]
    status = results.trials.set_index("trial_id")["status"]
    assert status[trial_id] == UNREADABLE
    others = status.drop(trial_id)
    assert len(others) == len(status) - 1 and (others == "succeeded").all()
    assert results.trials.set_index("trial_id")["time"].drop(trial_id).notna().all()
    assert trial_id not in set(results.records)


def test_a_campaign_with_an_unknown_response_names_it_and_analyses_the_others(
    root: Path,
) -> None:
    layout = ResultsLayout(root)
    campaign = yaml.safe_load(layout.campaign_file.read_text())
    campaign["spec"]["responses"] = ["time", "speedup"]
    layout.campaign_file.write_text(yaml.safe_dump(campaign))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = load(root)
    lines = [str(w.message) for w in caught if "speedup" in str(w.message)]
    assert len(lines) == 1
    assert "campaign.yaml: field spec.responses[1]: 'speedup' is not a response" in lines[0]
    assert results.responses == ["time"]
    assert results.trials["time"].notna().all()


def test_a_campaign_that_is_not_one_is_an_error_naming_the_field(root: Path) -> None:
    layout = ResultsLayout(root)
    campaign = yaml.safe_load(layout.campaign_file.read_text())
    campaign["spec"]["design"]["replicates"] = "many"
    layout.campaign_file.write_text(yaml.safe_dump(campaign))
    with pytest.raises(ResultsError, match=r"campaign\.yaml: field spec\.design\.replicates: "):
        load(root)


def test_nothing_readable_is_an_error(root: Path) -> None:
    for path in (root / "trials").glob("*/result.json"):
        path.write_text("{")
    with (
        pytest.raises(ResultsError, match="no trial's record could be read"),
        pytest.warns(UserWarning, match="not valid JSON"),
    ):
        load(root)


def test_analyze_prints_one_line_per_bad_record_and_no_traceback(root: Path) -> None:
    first = _first(root)
    _edit(first, enforcement="cgroup-v1")
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "analyze", str(root)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    named = [line for line in done.stderr.splitlines() if first.parent.name in line]
    assert named == [
        f"warning: trial {first.parent.name}: result.json: field enforcement: Input should be "
        "an object (got 'cgroup-v1')"
    ]
    report = (root / "report" / "index.md").read_text()
    assert "## Trials that could not be read" in report
