"""Which runs a fit used and why the rest were left out; the trials without a meter. Pure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.fit_runs import CENSORED, left_out, meter_reason, runs_note
from trainbed.analysis.reporting.energy_section import meter_table, meters_section

NAN = np.nan
GPU = "nvml: GPU 0 (NVIDIA H200)"
CPU = "none: no GPU (device cpu)"


def trials() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": ["t1", "t2", "t3", "t4", "t5"],
            "run_order": [5, 1, 2, 3, 4],
            "gpu": [1, 1, 0, 0, 1],
            "status": ["succeeded", "succeeded", "succeeded", "succeeded", "failed"],
            "energy_source": [GPU, GPU, CPU, "none", None],
            "time_to_accuracy": [10.0, NAN, 12.0, 14.0, NAN],
            "energy_to_accuracy": [100.0, NAN, NAN, NAN, NAN],
            "energy": [150.0, 160.0, NAN, NAN, NAN],
            "throughput": [NAN, 5.0, 5.0, 5.0, NAN],
        }
    )


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # t2 had a meter and never met the target: censored; t3/t4 never had a meter
        (
            "energy_to_accuracy",
            [
                "",
                CENSORED,
                "no energy meter: no GPU (device cpu)",
                "no energy meter: no reason recorded",
                "did not succeed: failed",
            ],
        ),
        ("time_to_accuracy", ["", CENSORED, "", "", "did not succeed: failed"]),
        # not a censored response: a null is simply not recorded
        (
            "throughput",
            ["recorded no `samples_per_s`", "", "", "", "did not succeed: failed"],
        ),
        (
            "energy",
            [
                "",
                "",
                *["no energy meter: " + r for r in ("no GPU (device cpu)",)],
                "no energy meter: no reason recorded",
                "did not succeed: failed",
            ],
        ),
    ],
)
def test_each_left_out_run_has_one_reason(response: str, expected: list[str]) -> None:
    assert left_out(trials(), response).tolist() == expected


def test_runs_note_names_the_runs_in_run_order_and_groups_the_rest() -> None:
    assert runs_note(trials(), "energy") == (
        "Fitted on 2 of 5 runs: t2, t1; left out: t3 (no energy meter: no GPU (device cpu)); "
        "t4 (no energy meter: no reason recorded); t5 (did not succeed: failed)."
    )
    every = trials().assign(status="succeeded", throughput=1.0)
    assert runs_note(every, "throughput") == "Fitted on all 5 runs."


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("none: no GPU (device cpu)", "no GPU (device cpu)"),
        ("none", "no reason recorded"),
        (None, "no reason recorded"),
        (NAN, "no reason recorded"),
        ("none: RAPL unreadable: permission denied", "RAPL unreadable: permission denied"),
    ],
)
def test_meter_reason(source: object, reason: str) -> None:
    assert meter_reason(source) == reason


def test_meters_section_lists_the_succeeded_trials_without_a_meter() -> None:
    table = meter_table(trials(), ["gpu"])
    assert table["trial_id"].tolist() == ["t3", "t4"]
    assert table["why no meter"].tolist() == ["no GPU (device cpu)", "no reason recorded"]
    text = meters_section(trials(), ["gpu"], ["time", "energy_to_accuracy"])
    assert "2 of 4 succeeded trials had an energy meter: `nvml: GPU 0 (NVIDIA H200)` (2)" in text
    assert "2 of 4 succeeded trials had **no energy meter**" in text
    # a CPU-only campaign that never asked for energy gets no section
    cpu_only = trials().assign(energy_source=CPU, energy=NAN, energy_to_accuracy=NAN)
    assert meters_section(cpu_only, ["gpu"], ["accuracy", "time"]) == ""
