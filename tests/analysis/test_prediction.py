"""Predicted against measured: per-trial errors, trials left out of the comparison, the
median |error|, and the campaign's measured span."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.pilot_check import (
    measured_span_s,
    median_abs_error,
    predicted_vs_measured,
)
from trainbed.contract.pilot import PilotRecord, TrialPrediction


def _pilot() -> PilotRecord:
    return PilotRecord(
        campaign="c",
        iterations=20,
        trials=[
            TrialPrediction(trial_id="a", epochs=5, train_time_s=110.0, wall_time_s=120.0),
            TrialPrediction(trial_id="b", epochs=5, train_time_s=90.0, wall_time_s=100.0),
            TrialPrediction(trial_id="c", epochs=5, train_time_s=50.0, wall_time_s=60.0),
            TrialPrediction(trial_id="d", epochs=5, train_time_s=50.0, wall_time_s=60.0),
            TrialPrediction(trial_id="gone", epochs=5, train_time_s=1.0),
        ],
    )


TRIALS = pd.DataFrame(
    {
        "trial_id": ["a", "b", "c", "d"],
        "status": ["succeeded", "succeeded", "succeeded", "failed"],
        "epochs_run": [5, 5, 3, 1],
        "train_time_s": [100.0, 100.0, 30.0, np.nan],
        "wall_time_s": [100.0, 125.0, 40.0, 5.0],
        "started_at": [
            "2026-01-01T00:00:00+00:00",
            "2026-01-01T00:02:00+00:00",
            "2026-01-01T00:04:00+00:00",
            None,
        ],
        "finished_at": [
            "2026-01-01T00:01:40+00:00",
            "2026-01-01T00:04:05+00:00",
            "2026-01-01T00:04:40+00:00",
            None,
        ],
    }
)


def test_errors_per_trial() -> None:
    frame = predicted_vs_measured(TRIALS, _pilot()).set_index("trial_id")
    assert list(frame.index) == ["a", "b", "c", "d"]  # "gone" is not in the campaign
    assert frame.loc["a", "train_error_pct"] == pytest.approx(10.0)
    assert frame.loc["b", "train_error_pct"] == pytest.approx(-10.0)
    assert frame.loc["a", "wall_error_pct"] == pytest.approx(20.0)
    assert frame.loc["b", "wall_error_pct"] == pytest.approx(-20.0)
    # stopped early at its target: predicted for the whole budget, so not compared
    assert np.isnan(frame.loc["c", "train_error_pct"]) and "3 of 5" in frame.loc["c", "note"]
    assert np.isnan(frame.loc["d", "train_error_pct"]) and "failed" in frame.loc["d", "note"]


def test_summary() -> None:
    frame = predicted_vs_measured(TRIALS, _pilot())
    assert median_abs_error(frame) == pytest.approx(10.0)
    assert median_abs_error(frame, "wall_error_pct") == pytest.approx(20.0)
    assert np.isnan(median_abs_error(frame.iloc[0:0]))
    assert measured_span_s(TRIALS) == pytest.approx(280.0)
