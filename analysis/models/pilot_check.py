"""Predicted against measured: ``trainbed pilot``'s predictions beside the campaign's times.

The pilot (``pilot.json``, :mod:`trainbed.contract.pilot`) predicted each trial's train time
(``train_time_s``, the sum of epoch train times) and its worker wall time (``wall_time_s``) from
the iteration-time study's model. After the campaign this sets each prediction beside what the trial
measured, with the error in % of the measured value, and the campaign's wall time beside the
span its trials took. A trial that stopped at its accuracy target before its epoch budget was
predicted for the whole budget: its row says so, and it stays out of the error summary. Pure.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from trainbed.contract.pilot import PilotRecord

PREDICTION_COLUMNS = [
    "trial_id",
    "status",
    "epochs_planned",
    "epochs_run",
    "train_predicted_s",
    "train_measured_s",
    "train_error_pct",
    "wall_predicted_s",
    "wall_measured_s",
    "wall_error_pct",
    "note",
]


def _error(predicted: Any, measured: Any) -> float:
    if predicted is None or measured is None or not np.isfinite(measured) or measured <= 0:
        return np.nan
    return 100.0 * (float(predicted) - float(measured)) / float(measured)


def predicted_vs_measured(trials: pd.DataFrame, pilot: PilotRecord) -> pd.DataFrame:
    """One row per trial the pilot predicted (:data:`PREDICTION_COLUMNS`)."""
    by_id = trials.set_index("trial_id")
    rows = []
    for prediction in pilot.trials:
        if prediction.trial_id not in by_id.index:
            continue
        trial = by_id.loc[prediction.trial_id]
        status = str(trial.get("status"))
        train = _number(trial.get("train_time_s"))
        wall = _number(trial.get("wall_time_s"))
        epochs_run = _number(trial.get("epochs_run"))
        note = prediction.note
        comparable = status == "succeeded"
        if comparable and epochs_run is not None and epochs_run != prediction.epochs:
            note = f"ran {epochs_run:g} of {prediction.epochs} planned epochs: not compared"
            comparable = False
        if status != "succeeded":
            note = f"{status}: not compared"
        rows.append(
            {
                "trial_id": prediction.trial_id,
                "status": status,
                "epochs_planned": prediction.epochs,
                "epochs_run": epochs_run,
                "train_predicted_s": prediction.train_time_s,
                "train_measured_s": train,
                "train_error_pct": _error(prediction.train_time_s, train) if comparable else np.nan,
                "wall_predicted_s": prediction.wall_time_s,
                "wall_measured_s": wall,
                "wall_error_pct": _error(prediction.wall_time_s, wall) if comparable else np.nan,
                "note": note,
            }
        )
    return pd.DataFrame(rows, columns=PREDICTION_COLUMNS)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def median_abs_error(frame: pd.DataFrame, column: str = "train_error_pct") -> float:
    """The median |error| in %, over the compared trials (NaN when none was)."""
    values = frame[column].dropna().abs() if column in frame else pd.Series(dtype=float)
    return float(values.median()) if len(values) else np.nan


def measured_span_s(trials: pd.DataFrame) -> float | None:
    """From the first trial's start to the last one's finish (the workers' clocks), seconds."""
    starts = [_stamp(v) for v in trials.get("started_at", pd.Series(dtype=object))]
    ends = [_stamp(v) for v in trials.get("finished_at", pd.Series(dtype=object))]
    starts = [s for s in starts if s is not None]
    ends = [e for e in ends if e is not None]
    if not starts or not ends:
        return None
    return max(ends) - min(starts)


def _stamp(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
