"""Robust summaries: the order-statistic interval of the median (its ranks, its achieved
confidence, its coverage by simulation) and the normality advice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.robust import median_ci, normality_advice, point_medians


@pytest.mark.parametrize(
    ("n", "low_rank", "achieved"),
    [
        (2, 1, 0.5),  # [min, max] is all there is: 1 - 2/4
        (3, 1, 0.75),
        (5, 1, 0.9375),
        (6, 1, 0.96875),
        (9, 2, 1 - 2 * 10 / 512),  # [x(2), x(8)]: 1 - 2 P(B <= 1)
        (20, 6, 1 - 2 * 0.020694732666015625),  # [x(6), x(15)]
    ],
)
def test_ranks_and_achieved_confidence(n: int, low_rank: int, achieved: float) -> None:
    values = np.arange(1.0, n + 1)[::-1]  # unsorted on purpose
    median, low, high, got = median_ci(values, 0.95)
    assert median == pytest.approx(np.median(values))
    assert (low, high) == (float(low_rank), float(n + 1 - low_rank))
    assert got == pytest.approx(achieved)


def test_degenerate_inputs() -> None:
    assert np.isnan(median_ci(np.array([]))[0])
    median, low, high, achieved = median_ci(np.array([3.0, np.nan]))
    assert median == 3.0 and np.isnan(low) and np.isnan(high) and achieved == 0.0


def test_coverage_by_simulation_on_skewed_data() -> None:
    """On lognormal timings (true median 1), the interval covers at least what it claims."""
    rng = np.random.default_rng(4)
    n = 15
    hits, claimed = [], []
    for _ in range(3000):
        _, low, high, achieved = median_ci(rng.lognormal(0.0, 0.8, n))
        hits.append(low <= 1.0 <= high)
        claimed.append(achieved)
    assert min(claimed) == max(claimed) >= 0.95
    assert np.mean(hits) >= claimed[0] - 0.015


def test_point_medians_per_design_point() -> None:
    trials = pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(7)],
            "status": ["succeeded"] * 6 + ["failed"],
            "cpu": ["1", "1", "1", "2", "2", "2", "2"],
            "cpu_coded": [-1, -1, -1, 1, 1, 1, 1],
            "time": [10.0, 12.0, 50.0, 5.0, 6.0, 7.0, np.nan],
        }
    )
    table = point_medians(trials, [{"name": "cpu", "levels": ["1", "2"]}], "time")
    assert list(table["cpu"]) == ["1", "2"]
    assert list(table["n"]) == [3, 3]
    assert list(table["median"]) == [12.0, 6.0]
    assert list(table["ci_high"]) == [50.0, 7.0]
    assert list(table["confidence_pct"]) == [75.0, 75.0]


@pytest.mark.parametrize(
    ("shapiro", "positive", "expected"),
    [
        (None, True, None),
        ((0.98, 0.4), True, None),
        ((0.80, 0.01), True, "log model"),
        ((0.80, 0.01), False, "medians"),
    ],
)
def test_normality_advice(shapiro, positive: bool, expected: str | None) -> None:
    advice = normality_advice(shapiro, positive)
    if expected is None:
        assert advice is None
    else:
        assert advice is not None and expected in advice and "Shapiro-Wilk rejects" in advice
    if shapiro and not positive and advice:
        assert "log model" not in advice
