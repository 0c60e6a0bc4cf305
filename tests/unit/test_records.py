"""The result's one writer after the worker (amend_result) and the timestamps reader."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from trainbed.contract.layout import TrialLayout
from trainbed.contract.records import (
    Result,
    amend_result,
    append_timestamp,
    read_result,
    read_timestamps,
    write_result,
)

WORKER = Result(status="succeeded", trial_id="t1", epochs_run=3)


def _no_file(trial_dir: Path) -> None:
    pass


def _torn(trial_dir: Path) -> None:
    path = TrialLayout(trial_dir).result_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(WORKER.to_json()[:40], encoding="utf-8")


def _invalid(trial_dir: Path) -> None:
    path = TrialLayout(trial_dir).result_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"status": "exploded"}), encoding="utf-8")


def _valid(trial_dir: Path) -> None:
    write_result(trial_dir, WORKER)


def _failed(worker: Result | None) -> Result | None:
    base = worker or Result(status="succeeded", trial_id="t1")
    return base.model_copy(update={"status": "failed", "reason": "rank 1 exited 1"})


def _keep(worker: Result | None) -> Result | None:
    return None


# (case, setup, amend, worker the amend sees, result written (None: the file as it was))
CASES: list[
    tuple[
        str,
        Callable[[Path], None],
        Callable[[Result | None], Result | None],
        Result | None,
        Result | None,
    ]
] = [
    ("missing", _no_file, _failed, None, _failed(None)),
    ("torn", _torn, _failed, None, _failed(None)),
    ("invalid", _invalid, _failed, None, _failed(None)),
    ("valid", _valid, _failed, WORKER, _failed(WORKER)),
    ("valid, amend keeps it", _valid, _keep, WORKER, None),
    ("missing, amend keeps it", _no_file, _keep, None, None),
]


@pytest.mark.parametrize(
    ("case", "setup", "amend", "seen", "written"), CASES, ids=[c[0] for c in CASES]
)
def test_amend_result(
    tmp_path: Path,
    case: str,
    setup: Callable[[Path], None],
    amend: Callable[[Result | None], Result | None],
    seen: Result | None,
    written: Result | None,
) -> None:
    setup(tmp_path)
    path = TrialLayout(tmp_path).result_file
    before = path.read_bytes() if path.exists() else None
    given: list[Result | None] = []

    def spy(worker: Result | None) -> Result | None:
        given.append(worker)
        return amend(worker)

    returned = amend_result(tmp_path, spy)
    assert given == [seen]
    assert returned == written
    if written is None:
        assert (path.read_bytes() if path.exists() else None) == before
    else:
        assert read_result(tmp_path) == written
        assert not list(path.parent.glob(".*.tmp")), "written atomically, no temp file left"


@pytest.mark.parametrize(
    ("case", "text", "expected"),
    [
        ("missing", None, []),
        ("empty", "", []),
        (
            "two lines",
            '{"event": "start", "rank": 0}\n{"event": "stop", "rank": 0}\n',
            [{"event": "start", "rank": 0}, {"event": "stop", "rank": 0}],
        ),
        (
            "torn last line",
            '{"event": "start", "rank": 1}\n{"event": "st',
            [{"event": "start", "rank": 1}],
        ),
        (
            "not objects",
            '[1, 2]\n"stop"\n3\nnull\n{"event": "stop", "rank": 2}\n',
            [{"event": "stop", "rank": 2}],
        ),
        ("blank lines", '\n{"event": "start", "rank": 0}\n\n', [{"event": "start", "rank": 0}]),
    ],
)
def test_read_timestamps(
    tmp_path: Path, case: str, text: str | None, expected: list[dict[str, object]]
) -> None:
    if text is not None:
        path = TrialLayout(tmp_path).timestamps_file
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert read_timestamps(tmp_path) == expected


def test_read_timestamps_reads_what_append_timestamp_writes(tmp_path: Path) -> None:
    append_timestamp(tmp_path, "start", 0)
    append_timestamp(tmp_path, "stop", 0, source="executor", exit_code=137)
    lines = read_timestamps(tmp_path)
    assert [(line["event"], line["rank"]) for line in lines] == [("start", 0), ("stop", 0)]
    assert lines[1]["source"] == "executor" and lines[1]["exit_code"] == 137
    assert all(isinstance(line["time"], str) for line in lines)
