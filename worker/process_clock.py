"""When this process started, on the ``perf_counter`` clock the worker times everything with.

``wall_time_s`` (the response ``time``) runs from process start, so it includes the Python and
torch imports, which on a loaded machine can take longer than the training itself. The kernel
records the start in ``/proc/self/stat`` (field 22, clock ticks since boot) and the boot time in
``/proc/stat`` (``btime``); both are the host's, also in a container. The resolution is one
clock tick (10 ms). Where ``/proc`` cannot say, the start is when this module was imported, and
:func:`process_start` says so.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

_IMPORTED = time.perf_counter()


def _start_epoch(proc: Path = Path("/proc")) -> float | None:
    """The process's start as a Unix time, from /proc; None where /proc cannot say."""
    try:
        stat = (proc / "self" / "stat").read_text()
        # the command name (field 2) is in parentheses and may hold spaces: split after it
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks = int(fields[19])  # field 22 overall: starttime
        btime = next(
            int(line.split()[1])
            for line in (proc / "stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def process_start() -> tuple[float, str]:
    """The process's start on the ``perf_counter`` clock, and where it came from
    (``"proc"`` or ``"import"``)."""
    epoch = _start_epoch()
    if epoch is None:
        return _IMPORTED, "import"
    started = time.perf_counter() - (time.time() - epoch)
    # never later than this module's import (clock steps, tick rounding)
    return min(started, _IMPORTED), "proc"
