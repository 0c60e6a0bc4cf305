"""A collected results directory settled with what the API saw (``run --backend kubernetes``
records from the API; the workers' files arrive later, through ``collect``). Table-driven over
the worker's result, the observation kept in memory and the durable record; then ``settle``
over a directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_outcome import SPEC, SUCCEEDED, indexed, kube
from tests.unit.test_trial_status import T3, job
from trainbed.contract.records import Result, read_result, write_result
from trainbed.orchestrator.kube.verbs.collected import settle, settled_result
from trainbed.orchestrator.outcome import TrialObservation
from trainbed.orchestrator.results_dir import ResultsDir

COMPLETE = kube(job(("Complete", ""), completion=T3), [indexed(0, exit_code=0)], visible=False)
OOM = kube(
    job(("Failed", "PodFailurePolicy")),
    [indexed(1, exit_code=137, reason="OOMKilled"), indexed(0, exit_code=143)],
    visible=False,
)
TERMINATED = Result(status="terminated", reason="SIGTERM", final_accuracy=0.5)
RECORD_OOM = {"status": "oom_killed", "reason": "a rank exceeded its memory limit", "started": T3}

CASES: list[tuple[str, Result | None, TrialObservation | None, dict | None, Any]] = [
    # (case, the worker's result.json, the observation, the record, expected status or None)
    ("success: the worker's result stands as it is", SUCCEEDED, COMPLETE, None, "succeeded"),
    ("OOM: rank 0 wrote terminated, the API saw 137", TERMINATED, OOM, None, "oom_killed"),
    ("OOM: no result at all, the API's alone", None, OOM, None, "oom_killed"),
    (
        "an earlier run's record beats a worker that disagrees",
        TERMINATED,
        None,
        RECORD_OOM,
        "oom_killed",
    ),
    (
        "an earlier run's record agrees: nothing to write",
        SUCCEEDED,
        None,
        {"status": "succeeded"},
        None,
    ),
    ("an earlier run's record, no result: the record's", None, None, RECORD_OOM, "oom_killed"),
    ("nothing known: nothing written", SUCCEEDED, None, None, None),
]


@pytest.mark.parametrize(("case", "worker", "seen", "record", "status"), CASES)
def test_settled_result(
    case: str, worker: Result | None, seen: TrialObservation | None, record: dict | None, status
) -> None:
    result = settled_result(SPEC, worker, seen, record)
    if status is None:
        assert result is None
        return
    assert result is not None and result.status == status
    assert result.trial_id == "t1" and result.campaign == "c"
    if worker is not None:
        assert result.final_accuracy == worker.final_accuracy, "metrics come from the worker"
    if status == "oom_killed":
        assert "memory limit" in result.reason


@pytest.mark.parametrize("worker", [SUCCEEDED, None], ids=["worker's result", "no result"])
def test_kueue_timestamps_come_from_the_record(worker: Result | None) -> None:
    """The worker never sees its own queueing: the controller's record adds it, even where
    the worker's result otherwise stands."""
    record = {"status": "succeeded", "queued": "2026-01-01T00:00:00Z", "admitted": T3}
    result = settled_result(SPEC, worker, None, record)
    assert result is not None and result.status == "succeeded"
    assert (result.queued_at, result.admitted_at) == (record["queued"], T3)
    if worker is not None:
        assert result.final_accuracy == worker.final_accuracy


def test_settle_writes_specs_and_corrected_results(tmp_path: Path) -> None:
    results = ResultsDir(tmp_path / "c")
    other = SPEC.model_copy(update={"trial_id": "t2"})
    never = SPEC.model_copy(update={"trial_id": "t3"})
    write_result(results.trial_dir("t1"), TERMINATED)
    write_result(results.trial_dir("t2"), SUCCEEDED)
    specs = {"t1": SPEC, "t2": other, "t3": never}
    rewritten = settle(results, specs, {"t1": OOM, "t2": COMPLETE}, {})
    assert rewritten == 2  # both settled; t2's is the worker's, with its enforcement merged
    assert read_result(results.trial_dir("t1")).status == "oom_killed"
    assert read_result(results.trial_dir("t2")).final_accuracy == SUCCEEDED.final_accuracy
    assert (results.trial_dir("t1") / "trial.json").exists()
    assert not results.trial_dir("t3").exists(), "a trial that never started gets nothing"
