"""The report's Energy meters section: which trials had a meter, which did not, and why.

A campaign that crosses GPU and CPU trials meters energy on the GPU trials only (NVML), so its
energy fits stand on part of the runs. This section, near the top of the report, names the
trials without a meter with the reason their ``energy_source`` gives (``none: <reason>``), and
counts the trials per meter, so that no energy fit is read without knowing which runs it lacks.
Each fit then says which runs it used (``fit_runs``).
"""

from __future__ import annotations

import pandas as pd

from trainbed.analysis.models.fit_runs import ENERGY_RESPONSES, meter_reason, no_meter
from trainbed.analysis.reporting import tables


def energy_measured(trials: pd.DataFrame, requested: list[str]) -> bool:
    """Whether the report should speak of meters: an energy response was asked for or recorded."""
    if any(r in ENERGY_RESPONSES for r in requested):
        return True
    return any(trials[r].notna().any() for r in ENERGY_RESPONSES if r in trials)


def meter_table(trials: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """The succeeded trials without a meter: their levels, device and the reason. Pure."""
    succeeded = trials[trials["status"] == "succeeded"]
    missing = succeeded[no_meter(succeeded)]
    columns = ["trial_id", *names, *(["device"] if "device" in missing else [])]
    frame = missing[columns].copy()
    sources = missing["energy_source"] if "energy_source" in missing else pd.Series(dtype=object)
    frame["why no meter"] = [meter_reason(s) for s in sources.reindex(missing.index)]
    return frame.reset_index(drop=True)


def meters_section(trials: pd.DataFrame, names: list[str], requested: list[str]) -> str:
    """The Markdown section ("" when no energy response was asked for or recorded)."""
    if not energy_measured(trials, requested):
        return ""
    succeeded = trials[trials["status"] == "succeeded"]
    text = "\n## Energy meters\n\n"
    if succeeded.empty:
        return text + "No trial succeeded, so no energy was measured.\n"
    metered = succeeded[~no_meter(succeeded)]
    if len(metered):
        counts = metered["energy_source"].astype(str).value_counts(sort=False)
        text += (
            f"{len(metered)} of {len(succeeded)} succeeded trials had an energy meter: "
            + "; ".join(f"`{source}` ({n})" for source, n in counts.items())
            + ".\n"
        )
    missing = meter_table(trials, names)
    if missing.empty:
        return text + "Every succeeded trial had one.\n"
    text += (
        f"\n{len(missing)} of {len(succeeded)} succeeded trials had **no energy meter**, so "
        "their energy responses are null (not zero) and every energy fit below leaves them "
        "out (each fit names the runs it used):\n\n" + tables.markdown(missing)
    )
    return text
