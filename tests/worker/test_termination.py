"""SIGTERM to every rank of a 2-rank trial (as Kubernetes and the local executor send it):
the ranks stop at different iterations, yet the trial is ``terminated``, never ``failed``."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.worker.test_processes import logs, start_ranks, timestamps, wait_for_starts, write_spec
from trainbed.contract.records import read_result


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_sigterm_to_both_ranks_gives_terminated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = write_spec(tmp_path, parallelism=2, epochs=200, batch_size=8)
    procs = start_ranks(spec, out, 2, env={"TRAINBED_COLLECTIVE_TIMEOUT": "30"})
    try:
        wait_for_starts(out, 2, timeout=60)
        time.sleep(4.0)
        assert all(p.poll() is None for p in procs), logs(out)
        procs[1].send_signal(signal.SIGTERM)  # skewed on purpose: rank 1 stops first
        time.sleep(0.3)
        procs[0].send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert codes == [143, 143], logs(out)
    result = read_result(out)
    assert result is not None and result.status == "terminated", logs(out)
    assert result.reason.startswith("SIGTERM")
    stops = {t["rank"]: t for t in timestamps(out) if t["event"] == "stop"}
    assert {r: s["status"] for r, s in stops.items()} == {0: "terminated", 1: "terminated"}
    for rank in (0, 1):
        assert (out / "iterations" / f"rank-{rank}.csv").exists()
