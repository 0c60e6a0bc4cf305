"""The Pareto set as a pure function: directions, ties, censored and unmeasured points."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.pareto import Objective, pareto_set, pareto_status

NAN = np.nan
TIME_ENERGY = [Objective.of("time_to_accuracy"), Objective.of("energy_to_accuracy")]


def frame(rows: dict[str, tuple[float, ...]], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns)


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        # a trade-off: the fast one and the frugal one; c is worse than b on both
        ({"a": (50, 200), "b": (100, 100), "c": (120, 150)}, ["a", "b"]),
        # one point beats every other on both
        ({"a": (50, 100), "b": (60, 100), "c": (50, 110)}, ["a"]),
        # a tie on every response: neither dominates the other, both stay
        ({"a": (50, 100), "b": (50, 100), "c": (70, 120)}, ["a", "b"]),
        # equal on one response, better on the other: dominated
        ({"a": (50, 100), "b": (50, 101)}, ["a"]),
        # a single comparable point is the set
        ({"a": (50, 100), "b": (NAN, 90)}, ["a"]),
    ],
)
def test_two_minimised_responses(rows: dict, expected: list[str]) -> None:
    values = frame(rows, ["time_to_accuracy", "energy_to_accuracy"])
    assert pareto_set(values, TIME_ENERGY) == expected


def test_maximised_accuracy_and_three_responses() -> None:
    objectives = [Objective.of(r) for r in ("time", "energy", "accuracy")]
    assert [o.maximise for o in objectives] == [False, False, True]
    values = frame(
        {
            "fast": (10, 500, 0.80),
            "frugal": (30, 100, 0.80),
            "accurate": (40, 600, 0.95),
            "worse": (40, 600, 0.90),  # accurate is as fast and frugal, and more accurate
        },
        ["time", "energy", "accuracy"],
    )
    status = pareto_status(values, objectives)
    assert list(status["status"]) == ["optimal", "optimal", "optimal", "dominated"]
    assert status.at["worse", "dominated_by"] == "accurate"
    # with accuracy minimised instead, "worse" beats "accurate": the direction matters
    flipped = [objectives[0], objectives[1], Objective("accuracy", maximise=False)]
    status = pareto_status(values, flipped)
    assert "worse" in status.at["accurate", "dominated_by"].split(", ")
    assert pareto_set(values, flipped) == ["fast", "frugal"]


def test_a_censored_point_is_never_compared() -> None:
    values = frame(
        {"a": (50, 200), "b": (100, 100), "c": (40, 90)},
        ["time_to_accuracy", "energy_to_accuracy"],
    )
    # c would dominate both, but one of its runs never reached the target
    censored = pd.DataFrame({"time_to_accuracy": [False, False, True]}, index=values.index)
    status = pareto_status(values, TIME_ENERGY, censored)
    assert list(status["status"]) == ["optimal", "optimal", "censored"]
    assert list(status["dominated_by"]) == ["", "", ""]
    assert pareto_set(values, TIME_ENERGY) == ["c"]


def test_one_response_missing() -> None:
    # b has no energy meter: left out, not ranked on a zero
    values = frame(
        {"a": (50, 200), "b": (10, NAN), "c": (100, 100)},
        ["time_to_accuracy", "energy_to_accuracy"],
    )
    status = pareto_status(values, TIME_ENERGY)
    assert list(status["status"]) == ["optimal", "missing", "optimal"]
    # nothing measured the energy at all: no point is comparable, the set is empty
    values["energy_to_accuracy"] = NAN
    assert set(pareto_status(values, TIME_ENERGY)["status"]) == {"missing"}
    assert pareto_set(values, TIME_ENERGY) == []


def test_two_distinct_responses_are_needed() -> None:
    values = frame({"a": (1, 2)}, ["time", "energy"])
    with pytest.raises(AssertionError):
        pareto_status(values, [Objective.of("time"), Objective.of("time")])
