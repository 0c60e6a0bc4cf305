"""The campaign loop, and the only one: compare desired trials with observed ones, then act.

:func:`decide` is pure: (desired trials in run order, what the executor observes, concurrency,
now) -> actions. :class:`Driver` applies those actions through an :class:`Executor`, the only
code with side effects. The local executor and the Kubernetes executor sit behind the same
interface, so the laptop run and the in-cluster controller make the same decisions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from trainbed.contract.records import Result
from trainbed.contract.trial import TrialSpec


class Phase(StrEnum):
    """Where a trial stands, as an executor observes it."""

    PENDING = "pending"  # nothing exists for it yet
    RUNNING = "running"  # started (processes or a Job exist) and not finished
    FINISHED = "finished"  # its processes or pods ended; the outcome is not recorded yet
    RECORDED = "recorded"  # result.json (or the Campaign status) holds its outcome


@dataclass(frozen=True)
class Observation:
    phase: Phase
    started: float | None = None  # monotonic-ish seconds (time.time()) when it started
    status: str | None = None  # the recorded status, once RECORDED
    stopping: bool = False  # a stop was already requested


#: What an executor's silence about a trial means; one shared value, because decide() looks up
#: every trial of the plan on every pass (10,000 of them in a large campaign).
_PENDING = Observation(Phase.PENDING)


@dataclass(frozen=True)
class Start:
    trial_id: str


@dataclass(frozen=True)
class Record:
    trial_id: str


@dataclass(frozen=True)
class Stop:
    """Stop a running trial; ``status`` is what it will be recorded as (e.g. ``timed_out``)."""

    trial_id: str
    status: str
    reason: str


@dataclass(frozen=True)
class Done:
    pass


Action = Start | Record | Stop | Done


def decide(
    desired: Sequence[str],
    observed: Mapping[str, Observation],
    *,
    concurrency: int,
    now: float,
    timeout_s: float | None,
) -> list[Action]:
    """What to do next. Pure: the same inputs always give the same actions.

    - every finished trial is recorded, exactly once;
    - a running trial past its timeout is stopped, to be recorded as ``timed_out``;
    - pending trials start in run order while fewer than ``concurrency`` run;
    - when every desired trial is recorded, the campaign is done.
    """
    assert concurrency >= 1
    actions: list[Action] = []
    running = 0
    for trial_id in desired:
        obs = observed.get(trial_id, _PENDING)
        if obs.phase is Phase.FINISHED:
            actions.append(Record(trial_id))
        elif obs.phase is Phase.RUNNING:
            running += 1
            overdue = (
                timeout_s is not None and obs.started is not None and now - obs.started > timeout_s
            )
            if overdue and not obs.stopping:
                actions.append(
                    Stop(
                        trial_id, "timed_out", f"ran longer than the {timeout_s:g} s trial timeout"
                    )
                )
    free = concurrency - running
    for trial_id in desired:
        if free <= 0:
            break
        if observed.get(trial_id, _PENDING).phase is Phase.PENDING:
            actions.append(Start(trial_id))
            free -= 1
    if all(observed.get(t, _PENDING).phase is Phase.RECORDED for t in desired):
        actions.append(Done())
    return actions


class Executor(Protocol):
    """What the driver needs from a backend. Only executors have side effects."""

    def observe(self) -> dict[str, Observation]:
        """The state of every trial the backend knows about, rebuilt from what exists."""
        ...

    def start(self, trial: TrialSpec) -> None: ...

    def stop(self, trial_id: str, status: str, reason: str) -> None: ...

    def record(self, trial_id: str) -> Result:
        """Make the finished trial's outcome durable (idempotent) and return it."""
        ...

    def wait(self, timeout: float) -> None:
        """Block until something may have changed, at most ``timeout`` seconds."""
        ...


@dataclass
class DriverEvents:
    """Callbacks for progress displays; all optional."""

    started: Callable[[TrialSpec], None] | None = None
    recorded: Callable[[str, Result], None] | None = None
    stopped: Callable[[str, str], None] | None = None


@dataclass
class Driver:
    """Applies :func:`decide` through an executor until the campaign is done."""

    trials: Sequence[TrialSpec]
    executor: Executor
    concurrency: int = 1
    timeout_s: float | None = None
    poll_s: float = 0.5
    events: DriverEvents = field(default_factory=DriverEvents)
    clock: Callable[[], float] = time.time

    def step(self) -> bool:
        """One reconcile pass; returns True when the campaign is done."""
        by_id = {t.trial_id: t for t in self.trials}
        actions = decide(
            [t.trial_id for t in self.trials],
            self.executor.observe(),
            concurrency=self.concurrency,
            now=self.clock(),
            timeout_s=self.timeout_s,
        )
        for action in actions:
            if isinstance(action, Done):
                return True
            if isinstance(action, Record):
                result = self.executor.record(action.trial_id)
                if self.events.recorded:
                    self.events.recorded(action.trial_id, result)
            elif isinstance(action, Stop):
                self.executor.stop(action.trial_id, action.status, action.reason)
                if self.events.stopped:
                    self.events.stopped(action.trial_id, action.status)
            elif isinstance(action, Start):
                self.executor.start(by_id[action.trial_id])
                if self.events.started:
                    self.events.started(by_id[action.trial_id])
        return False

    def run(self) -> None:
        while not self.step():
            self.executor.wait(self.poll_s)
