"""The duty cycle: the share it runs, and, for real, a busy process held to half a core and
measured from /proc."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from trainbed.orchestrator.local.duty_cycle import DutyCycle, run_share, tree_cpu_seconds


@pytest.mark.parametrize(
    ("cpu", "cores", "share"), [(0.5, 1, 0.5), (1.5, 2, 0.75), (1.0, 1, 1.0), (2.0, 1, 1.0)]
)
def test_run_share(cpu: float, cores: int, share: float) -> None:
    assert run_share(cpu, cores) == share


@pytest.mark.timeout(60)
def test_a_busy_process_is_held_to_half_a_core() -> None:
    core = sorted(os.sched_getaffinity(0))[0]
    busy = subprocess.Popen(
        [sys.executable, "-c", "while True: pass"],
        process_group=0,
        preexec_fn=lambda: os.sched_setaffinity(0, {core}),  # noqa: PLW1509 - test child
    )
    try:
        cycle = DutyCycle([busy.pid], share=0.5).start()
        begin, used = time.monotonic(), tree_cpu_seconds(busy.pid)
        time.sleep(4.0)
        measured = (tree_cpu_seconds(busy.pid) - used) / (time.monotonic() - begin)
        achieved = cycle.stop()
    finally:
        busy.kill()
        busy.wait()
    # at most half a core (a loaded machine gives it less, never more)
    assert measured < 0.6, measured
    assert achieved[0] is not None and achieved[0] < 0.6
    assert abs(achieved[0] - measured) < 0.15, (achieved, measured)
    assert tree_cpu_seconds(busy.pid) is None, "a reaped process has no CPU to read"
