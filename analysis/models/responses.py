"""Derived responses the studies trainbed grew from computed by hand. Pure functions of the
loaded frames.

- the sync-period study: train time as the sum of per-epoch durations; accuracy per second
  ("bang for the buck"), ranked;
- the sync-period and energy-to-accuracy studies: time-to-accuracy at thresholds the user gives
  (the worker's time-to-accuracy clock at the first epoch whose validation accuracy reaches the
  threshold), censored (NaN, flagged) when never reached, not zero;
- the CIFAR-10 data-loading study: the share of step time spent waiting for data vs computing;
- the iteration-time study: beta = (first iteration + validation time) / (time of the remaining
  iterations), TMiAvg = mean time of the remaining iterations, and three early estimates of
  TMiAvg (the 2nd iteration, the mean of iterations 2-6 and of 2-11) with each one's % error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def train_time_sum(epochs: pd.DataFrame) -> pd.Series:
    """Per trial: the sum of the epochs' own train times (never a cumulative clock)."""
    if epochs.empty or "train_time_s" not in epochs:
        return pd.Series(
            dtype=float, name="train_time_sum_s", index=pd.Index([], name="trial_id", dtype=str)
        )
    return epochs.groupby("trial_id")["train_time_s"].sum().rename("train_time_sum_s")


def _first_column(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.Series | None:
    for name in names:
        if name in frame and frame[name].notna().any():
            return frame[name]
    return None


#: The clock of the canonical time-to-accuracy (result.json's epochs, or the TensorBoard tag).
CLOCK_COLUMNS = ("elapsed_s", "time/elapsed_s")
TTA_COLUMNS = [
    "trial_id",
    "threshold",
    "time_to_accuracy_s",
    "train_time_to_accuracy_s",
    "epoch",
    "censored",
]


def time_to_accuracy(epochs: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """Per trial, at the first epoch whose validation accuracy reaches ``threshold``:

    - ``time_to_accuracy_s``, the canonical time to accuracy (DESIGN.md, as MLPerf counts time
      to train): wall seconds from the start of training to the end of that validation,
      validation included, test-set passes excluded. It is the worker's own clock
      (``elapsed_s``), so it also counts what happens between epochs. Results written without
      that clock leave it NaN rather than approximate it;
    - ``train_time_to_accuracy_s``, a different quantity kept under its own name: the sum of the
      epochs' train times up to that epoch (no validation, nothing between epochs);
    - ``censored`` True, with NaN times, when it never does: a run that never got there is not
      a zero.

    The threshold is met at the first such epoch (patience 1); the worker's own
    ``time_to_accuracy_s`` applies the campaign's patience.
    """
    if epochs.empty or "epoch" not in epochs:
        return pd.DataFrame(columns=TTA_COLUMNS)
    frame = epochs.sort_values(["trial_id", "epoch"]).copy()
    accuracy = _first_column(frame, ("val_accuracy", "val/accuracy", "accuracy per epoch"))
    if accuracy is None:
        return pd.DataFrame(columns=TTA_COLUMNS)
    clock = _first_column(frame, CLOCK_COLUMNS)
    train = _first_column(frame, ("train_time_s", "time/epoch_train_s"))
    frame["_acc"] = accuracy
    frame["_clock"] = clock if clock is not None else np.nan
    frame["_train"] = (
        train.fillna(0.0).groupby(frame["trial_id"]).cumsum() if train is not None else np.nan
    )
    rows = []
    for trial_id, trial in frame.groupby("trial_id", sort=False):
        reached = trial[trial["_acc"] >= threshold]
        if len(reached):
            first = reached.iloc[0]
            rows.append(
                (
                    trial_id,
                    threshold,
                    float(first["_clock"]),
                    float(first["_train"]),
                    int(first["epoch"]),
                    False,
                )
            )
        else:
            rows.append((trial_id, threshold, np.nan, np.nan, np.nan, True))
    return pd.DataFrame(rows, columns=TTA_COLUMNS)


def accuracy_per_second(trials: pd.DataFrame) -> pd.DataFrame:
    """Seed 000's ranking: final accuracy per second of wall time, best first."""
    frame = trials[["trial_id", "accuracy", "time"]].dropna().copy()
    frame["accuracy_per_s"] = frame["accuracy"] / frame["time"]
    frame = frame.sort_values("accuracy_per_s", ascending=False).reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


def data_compute_share(iterations: pd.DataFrame) -> pd.DataFrame:
    """Per trial (all ranks): seconds waiting for data, computing, and the data share."""
    if iterations.empty:
        return pd.DataFrame(columns=["trial_id", "data_wait_s", "compute_s", "data_share"])
    sums = iterations.groupby("trial_id")[["data_wait_s", "compute_s"]].sum().reset_index()
    total = sums["data_wait_s"] + sums["compute_s"]
    sums["data_share"] = np.where(total > 0, sums["data_wait_s"] / total, np.nan)
    return sums


def iteration_model(iterations: pd.DataFrame, validation_time: pd.Series) -> pd.DataFrame:
    """Seed 002's beta and TMiAvg per trial, from rank 0's iterations, and the early estimates.

    ``validation_time`` maps trial_id to the trial's total validation time.
    """
    columns = [
        "trial_id",
        "first_iteration_s",
        "validation_s",
        "beta",
        "tmi_avg_s",
        "est_2nd_s",
        "est_2_6_s",
        "est_2_11_s",
        "err_2nd_pct",
        "err_2_6_pct",
        "err_2_11_pct",
    ]
    if iterations.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    rank0 = iterations[iterations["rank"] == 0].sort_values(["trial_id", "global_step"])
    for trial_id, frame in rank0.groupby("trial_id"):
        steps = frame.set_index("global_step")["step_s"]
        if len(steps) < 2:
            continue
        first = float(steps.iloc[0])
        rest = steps.iloc[1:]
        validation = float(validation_time.get(trial_id, 0.0) or 0.0)
        tmi = float(rest.mean())
        estimates = {
            "2nd": float(rest.iloc[0]),
            "2_6": float(rest.loc[2:6].mean()),
            "2_11": float(rest.loc[2:11].mean()),
        }
        row = {
            "trial_id": trial_id,
            "first_iteration_s": first,
            "validation_s": validation,
            "beta": (first + validation) / float(rest.sum()),
            "tmi_avg_s": tmi,
        }
        for key, value in estimates.items():
            row[f"est_{key}_s"] = value
            row[f"err_{key}_pct"] = abs(value - tmi) / tmi * 100 if tmi > 0 else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
