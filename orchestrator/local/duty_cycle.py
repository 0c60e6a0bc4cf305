"""A CPU quota without cgroups: a trial's ranks run for a share of each period and are stopped
for the rest (SIGSTOP/SIGCONT of each rank's process group, as ``cpulimit`` does).

Where no cgroup is usable (a user without root on a cgroup v1 host, or a v2 host without
delegation), CPU affinity holds only whole cores. A rank pinned to ``n`` cores and allowed to run
``cpu / n`` of every 100 ms period uses at most ``cpu`` cores, whatever it does. All ranks of a
trial are stopped and continued together, so no rank waits in a collective for a peer that is
stopped. This is coarser than the kernel's CFS quota (a rank's stop can land mid-collective), so
the enforcer measures what the ranks achieved, CPU seconds (utime + stime of the process tree,
from ``/proc``) over wall seconds, and the record carries it beside the level.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: The period of the duty cycle: long enough for signals to be cheap, short against an epoch.
PERIOD_S = 0.1
#: How often the CPU the ranks used is sampled (their last sample counts once they exit).
SAMPLE_S = 1.0


def run_share(cpu: float, cores: int) -> float:
    """The share of each period the ranks run: the CPU limit over the cores they are pinned
    to, at most 1 (no cycling needed)."""
    assert cores > 0
    return min(1.0, cpu / cores)


def tree_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float | None:
    """utime + stime of a process and its descendants (reaped children included), seconds;
    None when the process is gone."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    stack, seen, found = [pid], set(), False
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = (proc / str(current) / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += sum(int(v) for v in fields[11:15]) / tick  # utime stime cutime cstime
            found = True
            children = (proc / str(current) / "task" / str(current) / "children").read_text()
            stack.extend(int(c) for c in children.split())
        except (OSError, ValueError, IndexError):
            continue
    return total if found else None


@dataclass
class _Sample:
    cpu_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class DutyCycle:
    """The duty cycle of one trial's ranks (process group leaders), until :meth:`stop`."""

    pids: list[int]
    share: float
    period_s: float = PERIOD_S
    _stop: threading.Event = field(default_factory=threading.Event)
    _samples: dict[int, _Sample] = field(default_factory=dict)
    _thread: threading.Thread | None = None

    def start(self) -> DutyCycle:
        self._begin = time.monotonic()
        self._samples = {pid: _Sample() for pid in self.pids}
        self._thread = threading.Thread(target=self._run, name="duty-cycle", daemon=True)
        self._thread.start()
        return self

    def _signal(self, sig: signal.Signals) -> None:
        for pid in self.pids:
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def _sample(self) -> None:
        now = time.monotonic() - self._begin
        for pid, sample in self._samples.items():
            used = tree_cpu_seconds(pid)
            if used is not None:
                sample.cpu_s, sample.wall_s = used, now

    def _run(self) -> None:
        run_s, stop_s = self.share * self.period_s, (1 - self.share) * self.period_s
        next_sample = 0.0
        try:
            while not self._stop.is_set():
                self._signal(signal.SIGCONT)
                if self._stop.wait(run_s):
                    break
                if stop_s > 0:
                    self._signal(signal.SIGSTOP)
                    self._stop.wait(stop_s)
                if time.monotonic() - self._begin >= next_sample:
                    self._sample()
                    next_sample += SAMPLE_S
        finally:
            self._signal(signal.SIGCONT)

    def stop(self) -> list[float | None]:
        """Stop cycling (the ranks run on, unstopped) and return each rank's achieved CPU,
        in cores (CPU seconds over the wall seconds it was watched); None where unmeasured."""
        self._sample()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return [
            round(s.cpu_s / s.wall_s, 4) if s.wall_s > 0 else None
            for s in (self._samples[pid] for pid in self.pids)
        ]
