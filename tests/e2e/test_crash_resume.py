"""SIGKILL the driver at several points, resume each time: every trial ends with exactly one
result, none is lost, and no partial output is mixed into a rerun."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.helpers import design_ids, results, run_cli, write_campaign

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _start(spec: Path, out: Path, resume: bool) -> subprocess.Popen[bytes]:
    args = [
        sys.executable,
        "-m",
        "trainbed.orchestrator.cli",
        "run",
        str(spec),
        "--out",
        str(out),
        "--no-analyze",
    ]
    if resume:
        args.append("--resume")
    return subprocess.Popen(
        args,
        env={**os.environ, "TRAINBED_NO_PROGRESS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(
    condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 120
) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    raise AssertionError("kill point never reached")


def _wait_gone(pids: list[int], timeout: float) -> None:
    """Wait for each process to exit (a pidfd turns readable when it does): an event, not a
    sleep, so a loaded machine only makes this slower, never wrong."""
    deadline = time.monotonic() + timeout
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        finally:
            os.close(fd)


def _workers_of(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "trainbed.worker" in cmd and str(root) in cmd:
            found.append(int(entry.name))
    return found


def test_kill_driver_at_five_points_then_resume(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml",
        "crash",
        [
            {"name": "batch_size", "target": "workload.batch_size", "levels": [32, 64]},
            {"name": "lr", "target": "workload.lr", "levels": [0.05, 0.1]},
            {"name": "optimizer", "target": "workload.optimizer", "levels": ["sgd", "adam"]},
        ],
        design={"type": "fractional", "generators": ["C = AB"], "replicates": 2, "seed": 5},
        workload={"parallelism": 2, "epochs": 2},
    )
    out = tmp_path / "out"
    root = out / "crash"

    def count() -> int:
        return len(results(root)) if root.exists() else 0

    def new_file(pattern: str, since: float, unrecorded: bool = False) -> bool:
        """A file matching ``pattern`` under trials/ created after ``since`` (partial output of
        an earlier attempt does not count)."""
        if not (root / "trials").exists():
            return False
        for path in (root / "trials").glob(pattern):
            trial_dir = root / "trials" / path.relative_to(root / "trials").parts[0]
            if unrecorded and (trial_dir / "result.json").exists():
                continue
            try:
                if path.stat().st_ctime > since:
                    return True
            except FileNotFoundError:
                continue
        return False

    def after(make: Callable[[float, int], bool]) -> Callable[[], Callable[[], bool]]:
        def factory() -> Callable[[], bool]:
            since, n = time.time(), count()
            return lambda: make(since, n)

        return factory

    kill_points: list[tuple[str, Callable[[], Callable[[], bool]]]] = [
        ("design.csv written", lambda: lambda: (root / "design.csv").exists()),
        ("workers spawned", after(lambda t, n: new_file("*/logs/rank-1.log", t))),
        ("a rank started training", after(lambda t, n: new_file("*/timestamps.jsonl", t, True))),
        ("just after a result", after(lambda t, n: count() > n)),
        (
            "next trial started after a result",
            after(lambda t, n: count() > n and new_file("*/timestamps.jsonl", t, True)),
        ),
        ("after 2 s", after(lambda t, n: time.time() - t > 2.0)),
    ]
    resume = False
    killed = 0
    for name, make_condition in kill_points:
        proc = _start(spec, out, resume)
        condition = make_condition()
        reached = _wait_for(condition, proc)
        if reached and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        # the kernel's death signal is on its way to every worker; a worker that was really
        # orphaned would still be running after the whole minute
        _wait_gone(_workers_of(root), timeout=60)
        assert not _workers_of(root), f"workers outlived the driver killed at {name!r}"
        resume = True
    assert killed >= 5
    run_cli("run", str(spec), "--out", str(out), "--resume", "--no-analyze")

    ids = design_ids(root)
    found = results(root)
    assert sorted(found) == sorted(ids), "every trial has exactly one result"
    assert all(r["status"] == "succeeded" for r in found.values()), found
    for trial_id in ids:
        directory = root / "trials" / trial_id
        events = [
            json.loads(line) for line in (directory / "timestamps.jsonl").read_text().splitlines()
        ]
        starts = sorted(e["rank"] for e in events if e["event"] == "start")
        assert starts == [0, 1], f"{trial_id}: output of two attempts mixed: {events}"
        for rank in (0, 1):
            text = (directory / "iterations" / f"rank-{rank}.csv").read_text().splitlines()
            assert text and text[0].startswith("rank,")
    attempts = list((root / "attempts").glob("*/*")) if (root / "attempts").exists() else []
    assert attempts, "killed trials' partial output was moved aside"
    for attempt in attempts:
        assert not (attempt / "result.json").exists()
