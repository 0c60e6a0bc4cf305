"""Which runs a fit used, and why each other run was left out. Pure.

A fit is made over the succeeded runs that recorded its response. On a campaign whose CPU
trials have no energy meter, an energy fit then stands on half the runs, and "unbalanced" alone
would hide why. So every left-out run gets one reason, in this order:

- it did not succeed (its status);
- an energy response and the run had no meter (``energy_source`` says why: ``none: <reason>``);
- a censored response (time or energy to accuracy) and the run never reached the target;
- otherwise it recorded no value for the response's field.

The fit sections and the trade-off section say "fitted on 4 of 8 runs: ...; left out: ..." from
these reasons, and the censoring rule counts only the runs that could have been measured.
"""

from __future__ import annotations

import pandas as pd

from trainbed.analysis.models.units import info

#: Responses an energy meter measures: a trial without one has none of them.
ENERGY_RESPONSES = frozenset({"energy", "energy_to_accuracy", "train_energy", "energy_per_sample"})
#: The reason of a censored run (never reached the target).
CENSORED = "never reached the target: censored"
#: How many used runs a note names before it abbreviates.
MAX_NAMED = 16


def is_censored_response(response: str) -> bool:
    """Time or energy to accuracy (also at a threshold): missing, not zero, when never met."""
    return info(response).censored or response.startswith("time_to_accuracy_")


def no_meter(trials: pd.DataFrame) -> pd.Series:
    """Per trial: True where no energy meter ran (``energy_source`` is ``none...`` or absent)."""
    if "energy_source" not in trials:
        return pd.Series(True, index=trials.index)
    source = trials["energy_source"].fillna("none").astype(str).str.strip()
    return source.eq("") | source.str.lower().str.startswith("none")


def meter_reason(source: object) -> str:
    """Why a trial had no meter, from its ``energy_source`` (``none: no GPU`` -> ``no GPU``)."""
    text = "" if source is None or (isinstance(source, float) and source != source) else source
    text = str(text).strip()
    reason = text.split(":", 1)[1].strip() if ":" in text else ""
    return reason or "no reason recorded"


def left_out(trials: pd.DataFrame, response: str) -> pd.Series:
    """Per trial: "" when the fit of ``response`` can use it, else the one reason it cannot."""
    values = trials[response] if response in trials else pd.Series(float("nan"), trials.index)
    unmetered = no_meter(trials) if response in ENERGY_RESPONSES else None
    censored = is_censored_response(response)
    field = info(response).field or response
    reasons = []
    for i in trials.index:
        status = trials.at[i, "status"]
        if status != "succeeded":
            reasons.append(f"did not succeed: {status}")
        elif pd.notna(values.at[i]):
            reasons.append("")
        elif unmetered is not None and unmetered.at[i]:
            source = trials.at[i, "energy_source"] if "energy_source" in trials else None
            reasons.append(f"no energy meter: {meter_reason(source)}")
        elif censored:
            reasons.append(CENSORED)
        else:
            reasons.append(f"recorded no `{field}`")
    return pd.Series(reasons, index=trials.index, dtype=object)


def _names(ids: list[str], limit: int = MAX_NAMED) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", … ({len(ids) - limit} more)" if len(ids) > limit else "")


def runs_note(trials: pd.DataFrame, response: str) -> str:
    """One line: the runs the fit of ``response`` stands on, and the rest grouped by reason."""
    ordered = trials.sort_values("run_order") if "run_order" in trials else trials
    reasons = left_out(ordered, response)
    used = ordered.loc[reasons.eq(""), "trial_id"].astype(str).tolist()
    total = len(ordered)
    if len(used) == total:
        return f"Fitted on all {total} runs."
    text = f"Fitted on {len(used)} of {total} runs"
    if used and len(used) <= MAX_NAMED:
        text += f": {', '.join(used)}"
    groups = [
        f"{_names(ids.astype(str).tolist())} ({reason})"
        for reason, ids in ordered.loc[reasons.ne(""), "trial_id"].groupby(
            reasons[reasons.ne("")], sort=False
        )
    ]
    return text + "; left out: " + "; ".join(groups) + "."
