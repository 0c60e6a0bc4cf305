"""How long trials waited in a Kueue queue: per trial and in total, apart from every time
response. Pure (a function of the trials frame).

A trial queued through Kueue (``spec.kubernetes.queue``) records ``queued_at`` (its Job created,
suspended) and ``admitted_at`` (Kueue last admitted it). The wait between them depends on the
other work on a shared cluster, not on the factors, so it is reported here and never fitted:
``time``, ``time_to_accuracy`` and the other times are the worker's, measured once it ran.
"""

from __future__ import annotations

import pandas as pd

#: Trials listed one by one in the report (the longest waits); the rest are in the totals.
LISTED = 20


def queueing_delays(trials: pd.DataFrame) -> pd.DataFrame:
    """trial_id, queued_at, admitted_at and wait_s of every trial that was queued (an empty
    frame where none was). A trial queued but never admitted has a null wait."""
    if "queued_at" not in trials or trials["queued_at"].isna().all():
        return pd.DataFrame(columns=["trial_id", "queued_at", "admitted_at", "wait_s"])
    queued = trials.loc[trials["queued_at"].notna(), ["trial_id", "queued_at", "admitted_at"]]
    start = pd.to_datetime(queued["queued_at"], utc=True, errors="coerce")
    end = pd.to_datetime(queued["admitted_at"], utc=True, errors="coerce")
    out = queued.copy()
    out["wait_s"] = (end - start).dt.total_seconds()
    return out.reset_index(drop=True)


def queueing_section(trials: pd.DataFrame) -> str:
    """The report's "Queueing" section, or nothing where no trial was queued."""
    delays = queueing_delays(trials)
    if delays.empty:
        return ""
    waits = delays["wait_s"].dropna()
    never = int(delays["wait_s"].isna().sum())
    md = ["## Queueing (Kueue)\n\n"]
    md.append(
        f"{len(delays)} trials waited in a Kueue queue before they ran: "
        f"{waits.sum():.1f} s in total, median {waits.median():.1f} s, "
        f"longest {waits.max():.1f} s"
        + (f"; {never} never admitted (no `admitted_at`)" if never else "")
        + ". These waits are not part of `time`, `time_to_accuracy` or any other response: "
        "the worker measures those once the trial runs. They depend on the other work the "
        "cluster admitted, so they are not fitted.\n\n"
        if len(waits)
        else f"{len(delays)} trials were queued and none was admitted.\n\n"
    )
    shown = delays.sort_values("wait_s", ascending=False, na_position="first").head(LISTED)
    md.append("| trial | queued at | admitted at | wait (s) |\n| --- | --- | --- | ---: |\n")
    for row in shown.itertuples(index=False):
        wait = "" if pd.isna(row.wait_s) else f"{row.wait_s:.1f}"
        md.append(f"| {row.trial_id} | {row.queued_at} | {row.admitted_at or ''} | {wait} |\n")
    if len(delays) > LISTED:
        md.append(f"\nThe {LISTED} longest waits of {len(delays)}.\n")
    return "".join(md) + "\n"
