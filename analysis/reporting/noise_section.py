"""The report's Noise section, near the top: which trials the noise guard flags, and what the
fits do about them (include them, or leave them out with ``--exclude-noisy``, saying which).

The verdicts are :mod:`trainbed.analysis.models.noise`'s; this renders them and, on request,
returns the
results without the flagged trials for every fit that follows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from trainbed.analysis.models.noise import NoisePolicy, has_records, noise_frame, noise_records
from trainbed.analysis.reading.load import Results
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.text import records
from trainbed.contract.records import Result


@dataclass
class NoiseAssessment:
    """What :func:`assess_noise` found and did."""

    results: Results
    frame: pd.DataFrame
    excluded: list[str]
    markdown: str
    data: dict[str, Any] = field(default_factory=dict)


def assess_noise(results: Results, policy: NoisePolicy, out: Path) -> NoiseAssessment:
    """The Noise section, and the results the fits use (flagged trials left out on request)."""
    found = noise_records(results.records, list(results.trials["trial_id"]))
    frame = noise_frame(results.trials, found, policy)
    frame.to_csv(out / "noise.csv", index=False)
    md = ["\n## Noise\n\n"]
    data: dict[str, Any] = {"policy": asdict(policy), "flagged": [], "excluded": []}
    if not has_records(frame):
        md.append(
            "No trial carries a noise record (results written before trainbed recorded "
            "them), so nothing here says whether the machine was quiet.\n"
        )
        data["trials"] = []
        md.append(_beside_note(results.records, data))
        return NoiseAssessment(results, frame, [], "".join(md), data)
    flagged = frame[frame["flagged"]]
    limit = f"{policy.threshold:.0%}"
    md.append(
        "Each trial timed a fixed matrix multiply under its own CPU limit before and after it "
        "ran, and recorded its hosts' load (`noise.csv`). A trial is flagged when its "
        f"calibration is more than {limit} from the median of the trials with its CPU limit "
        f"(or changed more than {limit} over the trial, every repeat moved), when other work used "
        f"{policy.contention_cores:g}+ cores on its host, a rank waited for a CPU "
        f"{policy.wait_pct:g}%+ of the time beyond its quota, steal reached "
        f"{policy.steal_pct:g}% or iowait {policy.iowait_pct:g}%, or another trial ran at "
        "the same time.\n\n"
    )
    md.append(f"**{len(flagged)} of {len(frame)} trials flagged.**\n\n")
    shown = frame[frame["flagged"]] if len(flagged) else frame.iloc[0:0]
    md.append(
        tables.markdown(
            shown[
                [
                    "trial_id",
                    "status",
                    "calibration_s",
                    "calibration_dev_pct",
                    "other_busy_cores",
                    "cpu_wait_pct",
                    "steal_pct",
                    "loadavg_max",
                    "concurrent",
                    "node",
                    "why",
                ]
            ].rename(
                columns={
                    "calibration_s": "calibration (s)",
                    "calibration_dev_pct": "vs median (%)",
                    "other_busy_cores": "other load (cores)",
                    "cpu_wait_pct": "CPU wait (%)",
                    "steal_pct": "steal (%)",
                    "loadavg_max": "load avg",
                }
            ),
            ".3g",
        )
    )
    succeeded = frame[frame["status"] == "succeeded"]
    if len(succeeded) and succeeded["flagged"].all():
        md.append(
            "\n**Every trial ran on a noisy machine.** The time responses below carry that "
            "noise (and may carry its trend): rerun on a quiet machine, or read the "
            "calibration-adjusted effects (`--covariate`).\n"
        )
    loads = frame["loadavg_max"].dropna()
    if len(loads):
        md.append(
            f"\nLoad average over the campaign: median {loads.median():.2f}, max "
            f"{loads.max():.2f}; calibration spread (max/min within a CPU limit): "
            f"{_spread(frame):.2f}x.\n"
        )
    data["flagged"] = list(flagged["trial_id"])
    data["trials"] = records(frame)
    excluded: list[str] = []
    if policy.exclude and len(flagged):
        excluded = list(flagged["trial_id"])
        kept = ~results.trials["trial_id"].isin(excluded)
        results = replace(
            results,
            trials=results.trials[kept].reset_index(drop=True),
            epochs=_without(results.epochs, excluded),
            iterations=_without(results.iterations, excluded),
        )
        md.append(
            f"\n`--exclude-noisy`: the {len(excluded)} flagged trials are **left out of every "
            "fit below** (they are listed above, not dropped silently): "
            + ", ".join(excluded)
            + ".\n"
        )
    elif len(flagged):
        md.append(
            "\nThe fits below **include** the flagged trials; `--exclude-noisy` leaves them "
            "out, `--covariate` adds the calibration to the model, `--block node` blocks on "
            "the node.\n"
        )
    if policy.covariate:
        md.append("\nThe calibration is also fitted as a covariate: see *Adjusted effects*.\n")
    if policy.block:
        md.append(f"\nThe {policy.block} is also fitted as a block: see *Adjusted effects*.\n")
    data["excluded"] = excluded
    md.append(_beside_note(results.records, data))
    return NoiseAssessment(results, frame, excluded, "".join(md), data)


def _beside_note(found: dict[str, Result], data: dict[str, Any]) -> str:
    """Which trials ran while Kueue had admitted other work in their namespace (the records'
    ``admitted_beside``), or nothing. Noted, not flagged: on a shared cluster that work may or
    may not have shared a trial's nodes, and the load records say whether it competed."""
    beside = {t: list(r.admitted_beside) for t, r in sorted(found.items()) if r.admitted_beside}
    data["admitted_beside"] = beside
    if not beside:
        return ""
    shown = "; ".join(f"{t} (beside {_first(names)})" for t, names in beside.items())
    return (
        f"\n**{len(beside)} of {len(found)} trials ran while Kueue had admitted other work in "
        f"their namespace** (other campaigns' trials, other teams' Jobs), which may have shared "
        f"their nodes: {shown}. Work outside the namespace is out of the controller's sight; "
        "a trial's own load record, where it has one, is what says whether anything competed "
        "for its CPUs.\n"
    )


def _spread(frame: pd.DataFrame) -> float:
    ratios = []
    ok = frame[frame["calibration_s"].notna()]
    for _, group in ok.groupby(ok["calibration_ref_s"].round(9)):
        values = group["calibration_s"]
        if len(values) > 1 and values.min() > 0:
            ratios.append(values.max() / values.min())
    return max(ratios) if ratios else 1.0


def _without(frame: pd.DataFrame, trial_ids: list[str]) -> pd.DataFrame:
    if frame.empty or "trial_id" not in frame:
        return frame
    return frame[~frame["trial_id"].isin(trial_ids)].reset_index(drop=True)


def _first(names: list[str], shown: int = 3) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")
