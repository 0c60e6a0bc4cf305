"""The driver's decisions, table-driven, with no processes and no cluster."""

from __future__ import annotations

import pytest

from trainbed.contract.records import Result
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.driver import (
    Done,
    Driver,
    Observation,
    Phase,
    Record,
    Start,
    Stop,
    decide,
)

P, R, F, D = Phase.PENDING, Phase.RUNNING, Phase.FINISHED, Phase.RECORDED


def obs(phase: Phase, started: float | None = None, stopping: bool = False) -> Observation:
    return Observation(phase, started=started, stopping=stopping)


CASES = [
    ("nothing yet, one at a time", {}, 1, [Start("a")]),
    ("nothing yet, two at a time", {}, 2, [Start("a"), Start("b")]),
    ("one running blocks the next", {"a": obs(R, 90)}, 1, []),
    (
        "finished is recorded first, then next starts",
        {"a": obs(F, 90)},
        1,
        [Record("a"), Start("b")],
    ),
    ("recorded ones are never restarted", {"a": obs(D), "b": obs(D)}, 1, [Start("c")]),
    ("resume: later trial recorded, earlier missing", {"b": obs(D)}, 2, [Start("a"), Start("c")]),
    ("all recorded is done", {"a": obs(D), "b": obs(D), "c": obs(D)}, 1, [Done()]),
    (
        "overdue running trial is stopped",
        {"a": obs(R, 0)},
        1,
        [Stop("a", "timed_out", "ran longer than the 50 s trial timeout")],
    ),
    ("a stop is requested once", {"a": obs(R, 0, stopping=True)}, 1, []),
    (
        "concurrency counts running, not finished",
        {"a": obs(F, 90), "b": obs(R, 95)},
        2,
        [Record("a"), Start("c")],
    ),
    ("unknown observed trials are ignored", {"zzz": obs(R, 90)}, 1, [Start("a")]),
]


@pytest.mark.parametrize(
    ("case", "observed", "concurrency", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_decide(case: str, observed: dict, concurrency: int, expected: list) -> None:
    actions = decide(["a", "b", "c"], observed, concurrency=concurrency, now=100.0, timeout_s=50)
    assert actions == expected


def test_decide_is_pure() -> None:
    observed = {"a": obs(F, 1)}
    first = decide(["a", "b"], observed, concurrency=1, now=5, timeout_s=None)
    assert first == decide(["a", "b"], observed, concurrency=1, now=5, timeout_s=None)
    assert observed == {"a": obs(F, 1)}


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class InMemoryExecutor:
    """A real (if trivial) executor: trials 'run' for a number of ticks. It exercises the loop,
    not a backend; the local and Kubernetes executors have their own integration tests."""

    def __init__(self, ticks: int) -> None:
        self.ticks = ticks
        self.state: dict[str, list] = {}
        self.starts: list[str] = []
        self.records: list[str] = []

    def observe(self) -> dict[str, Observation]:
        out = {}
        for tid, (left, recorded, started) in self.state.items():
            phase = D if recorded else (R if left > 0 else F)
            out[tid] = Observation(phase, started=started)
        return out

    def start(self, trial: TrialSpec) -> None:
        self.starts.append(trial.trial_id)
        self.state[trial.trial_id] = [self.ticks, False, 0.0]

    def stop(self, trial_id: str, status: str, reason: str) -> None:
        self.state[trial_id][0] = 0

    def record(self, trial_id: str) -> Result:
        self.records.append(trial_id)
        self.state[trial_id][1] = True
        return Result(status="succeeded")

    def wait(self, timeout: float) -> None:
        for entry in self.state.values():
            if entry[0] > 0:
                entry[0] -= 1


def _trials(n: int) -> list[TrialSpec]:
    return [
        TrialSpec(
            campaign="c", trial_id=f"t{i}", seed=i, workload=Workload(), resources=Resources()
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("concurrency", [1, 2, 5])
def test_driver_loop_starts_and_records_each_trial_once(concurrency: int) -> None:
    executor = InMemoryExecutor(ticks=3)
    Driver(trials=_trials(5), executor=executor, concurrency=concurrency, clock=FakeClock()).run()
    assert executor.starts == [f"t{i}" for i in range(5)]
    assert sorted(executor.records) == sorted(executor.starts)
