"""The worker's process clock: wall_time_s runs from process start, imports included."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from trainbed.worker import process_clock


def test_start_from_proc_is_before_now_and_import() -> None:
    started, source = process_clock.process_start()
    assert source == "proc"
    assert started <= process_clock._IMPORTED <= time.perf_counter()


def test_start_counts_work_done_before_the_import() -> None:
    # a child that burns ~1 s before importing the module must see >= ~1 s since its start
    code = (
        "import time\n"
        "t = time.perf_counter()\n"
        "while time.perf_counter() - t < 1.0: pass\n"
        "from trainbed.worker.process_clock import process_start\n"
        "started, source = process_start()\n"
        "print(source, time.perf_counter() - started)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[0] == "proc"
    assert 1.0 <= float(out[1]) < 30


def test_without_proc_falls_back_to_import(tmp_path: Path) -> None:
    assert process_clock._start_epoch(tmp_path) is None
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "stat").write_text("12 (a b) S " + " ".join(["0"] * 18) + " 250 0\n")
    (tmp_path / "stat").write_text("cpu 1 2 3\nbtime 1000\n")
    clk = __import__("os").sysconf("SC_CLK_TCK")
    assert process_clock._start_epoch(tmp_path) == 1000 + 250 / clk
