"""Live progress of a cluster campaign, for ``run --backend kubernetes`` and ``status --watch``.

One rich bar over a :class:`~trainbed.orchestrator.kube.objects.campaign_status.CampaignStatus`:
recorded of total, then failed, running and pending, the rate over the last minute, the ETA
at that rate, and, under it, what blocks the campaign when something does. A blocker (or a
diagnosis such as "no controller has reconciled this campaign") is also printed as a plain line
when it first appears or changes, so a log or a pipe shows it too, not only a terminal.
"""

from __future__ import annotations

import os
import time
from collections import deque
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from trainbed.contract.env import NO_PROGRESS
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus

#: The rate is taken over this window.
RATE_WINDOW_S = 60.0
#: Without a terminal (a pipe, a log), one plain progress line this often.
LINE_EVERY_S = 30.0


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class CampaignProgress:
    """A context manager; call :meth:`update` with each new status (and a diagnosis line)."""

    def __init__(self, console: Console, name: str) -> None:
        self.console = console
        self.name = name
        self.samples: deque[tuple[float, int]] = deque()
        self.said = ""
        self.line_at = float("-inf")
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("{task.fields[rate]}"),
            TextColumn("ETA {task.fields[eta]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task(name, total=None, counts="", rate="", eta="-")
        self.blocked = Text("")
        self.enabled = os.environ.get(NO_PROGRESS) != "1" and console.is_terminal
        self.live = Live(
            Group(self.progress, self.blocked),
            console=console,
            refresh_per_second=4,
            transient=False,
        )

    def __enter__(self) -> CampaignProgress:
        if self.enabled:
            self.live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self.live.stop()

    def rate(self, done: int, now: float) -> float | None:
        """Recorded trials per second over the last RATE_WINDOW_S (None before two samples)."""
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > RATE_WINDOW_S:
            self.samples.popleft()
        (t0, d0), (t1, d1) = self.samples[0], self.samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 else None

    def update(self, status: CampaignStatus, diagnosis: str = "") -> None:
        rate = self.rate(status.done, time.monotonic())
        remaining = status.total - status.done
        eta = _duration(remaining / rate) if rate and remaining > 0 else "-"
        queued = f"{status.queued} queued · " if status.queued else ""
        counts = (
            f"[red]{status.failed} failed[/] · {queued}{status.running} running · "
            f"{status.pending} pending"
        )
        self.progress.update(
            self.task,
            total=status.total or None,
            completed=status.done,
            counts=counts,
            rate=f"{rate:.1f}/s" if rate is not None else "",
            eta=eta,
        )
        blocked = status.blocked
        line = diagnosis or (f"blocked: {blocked.message}" if blocked else "")
        self.blocked.plain = line
        self.blocked.stylize("bold yellow")
        if line and line != self.said:
            if not self.enabled:
                self.console.print(f"{self.name}: {line}", highlight=False, soft_wrap=True)
            self.said = line
        elif not line:
            self.said = ""
        if self.enabled:
            self.live.refresh()
            return
        now = time.monotonic()
        if now - self.line_at >= LINE_EVERY_S or status.phase in ("Completed", "Invalid"):
            self.line_at = now
            self.console.print(
                f"{self.name}: {status.phase} {status.done}/{status.total} recorded, "
                f"{status.failed} failed, "
                + (f"{status.queued} queued, " if status.queued else "")
                + f"{status.running} running, {status.pending} pending"
                + (f", {rate:.1f}/s, ETA {eta}" if rate else ""),
                highlight=False,
            )
