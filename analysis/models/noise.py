"""The noise guard's verdicts: which trials ran on a machine too busy to trust their numbers.

Each rank's record in ``result.json`` (:mod:`trainbed.contract.noise`) holds a calibration before
and after the trial, under the trial's own CPU limit, and its host's counters over the trial. Per
trial this module takes:

- the calibration: the slowest of its ranks' before/after medians, compared with the median of
  the campaign's trials under the same CPU limit and thread count (a 500m trial calibrates
  slower than a 2-CPU one by design, so limits never compare with each other). A deviation past
  ``threshold`` flags the trial, and so does a change past it between before and after, where
  every repeat moved (:func:`separated`);
- the contention: per host, its busy cores minus the trial's own ranks' busy cores (the other
  load the trial shared the host with), the share of time a rank's main thread was ready but
  waited for a CPU (beyond its quota's throttling), the CPU time stolen by a hypervisor and
  spent in iowait,
  the load average, and the other trials of the campaign that ran at the same time (recorded by
  the local executor; derived from the trials' start and finish times where it recorded none,
  as in Kubernetes). Past :class:`NoisePolicy`'s limits, the trial is flagged.

Pure: frames and records in (the results the loader read), frames out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from trainbed.contract.noise import Calibration, LoadSamples, RankNoise
from trainbed.contract.records import Result

NOISE_COLUMNS = [
    "trial_id",
    "status",
    "calibration_s",
    "calibration_ref_s",
    "calibration_dev_pct",
    "calibration_drift_pct",
    "other_busy_cores",
    "cpu_wait_pct",
    "steal_pct",
    "iowait_pct",
    "loadavg_max",
    "concurrent",
    "node",
    "flagged",
    "why",
]


@dataclass(frozen=True)
class NoisePolicy:
    """When a trial is flagged, and what the fits do about it."""

    #: Calibration deviation from its limit group's median (and before/after drift), fraction.
    threshold: float = 0.20
    #: Other load on a host the trial used, in busy cores beyond the trial's own ranks.
    contention_cores: float = 0.5
    #: A rank's main thread waiting for a CPU beyond its quota's throttling, % of wall time.
    wait_pct: float = 10.0
    #: Hypervisor steal and iowait over the trial, % of all CPU time.
    steal_pct: float = 5.0
    iowait_pct: float = 10.0
    #: Leave flagged trials out of every fit (``--exclude-noisy``).
    exclude: bool = False
    #: Fit each response also with the calibration deviation as a covariate (``--covariate``).
    covariate: bool = False
    #: Fit each response also with ``node`` (or ``host``) as a block (``--block``).
    block: str | None = None


@dataclass
class TrialNoise:
    """One trial's records, as :func:`noise_records` found them."""

    ranks: list[RankNoise] = field(default_factory=list)
    concurrent_trials: list[str] | None = None
    load_samples: LoadSamples | None = None
    started_at: str | None = None
    finished_at: str | None = None


def noise_records(records: Mapping[str, Result], trial_ids: list[str]) -> dict[str, TrialNoise]:
    """Each trial's noise records from its result (absent or unreadable: an empty one)."""
    out: dict[str, TrialNoise] = {}
    for trial_id in trial_ids:
        result = records.get(trial_id)
        if result is None:
            out[trial_id] = TrialNoise()
            continue
        out[trial_id] = TrialNoise(
            ranks=list(result.noise or []),
            concurrent_trials=result.concurrent_trials,
            load_samples=result.load_samples,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )
    return out


def _max(values: list[float | None]) -> float:
    present = [v for v in values if v is not None and np.isfinite(v)]
    return max(present) if present else np.nan


def _other_busy(ranks: list[RankNoise]) -> float:
    """Per host: its busy cores (the ranks' mean view) minus the trial's own ranks' busy
    cores there; the worst host."""
    hosts: dict[str, list[RankNoise]] = {}
    for rank in ranks:
        hosts.setdefault(rank.node or rank.host or "?", []).append(rank)
    worst: list[float | None] = []
    for members in hosts.values():
        busy = [r.host_busy_cores for r in members if r.host_busy_cores is not None]
        own = [r.own_busy_cores for r in members if r.own_busy_cores is not None]
        if busy and len(own) == len(members):
            worst.append(max(0.0, float(np.mean(busy)) - float(np.sum(own))))
    return _max(worst)


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def overlaps(records: dict[str, TrialNoise]) -> dict[str, list[str]]:
    """For trials whose executor recorded no concurrent trials: the campaign's trials whose
    [started_at, finished_at] intersects theirs (the worker's clock, so start-up excluded)."""
    spans = {t: (_timestamp(r.started_at), _timestamp(r.finished_at)) for t, r in records.items()}
    out: dict[str, list[str]] = {}
    for trial_id, record in records.items():
        if record.concurrent_trials is not None:
            out[trial_id] = list(record.concurrent_trials)
            continue
        start, end = spans[trial_id]
        if start is None or end is None:
            out[trial_id] = []
            continue
        out[trial_id] = sorted(
            other
            for other, (s, e) in spans.items()
            if other != trial_id and s is not None and e is not None and s < end and start < e
        )
    return out


def separated(before: Calibration, after: Calibration) -> bool:
    """Whether every repeat of one calibration is slower than every repeat of the other.

    A calibration is a few short repeats, and under a CPU quota one repeat can land across
    one more or one fewer CFS period than its neighbour: its medians move by tens of percent
    with nothing else on the machine. A change of the machine's state moves every repeat. With
    5 repeats each, two sets this far apart arise by chance with probability 2 / C(10, 5) < 1%.
    Without repeats (older records) the medians alone decide, as before."""
    if not before.repeats or not after.repeats:
        return True
    return max(before.repeats) < min(after.repeats) or max(after.repeats) < min(before.repeats)


def _calibration(ranks: list[RankNoise]) -> tuple[float, float, float, tuple[Any, Any]]:
    """(slowest median of any rank, before/after drift %, the drift % of ranks whose repeats
    are :func:`separated`, the (cpu limit, threads) group)."""
    seconds: list[float | None] = []
    drift: list[float | None] = []
    shifted: list[float | None] = []
    group: tuple[Any, Any] = (None, None)
    for rank in ranks:
        pair = [rank.calibration_before, rank.calibration_after]
        for calibration in pair:
            if calibration is not None:
                seconds.append(calibration.seconds)
                group = (calibration.cpu_limit, calibration.threads)
        before, after = pair
        if before is not None and after is not None and before.seconds > 0:
            change = 100.0 * abs(after.seconds / before.seconds - 1.0)
            drift.append(change)
            shifted.append(change if separated(before, after) else 0.0)
    return _max(seconds), _max(drift), _max(shifted), group


def noise_frame(
    trials: pd.DataFrame, records: dict[str, TrialNoise], policy: NoisePolicy
) -> pd.DataFrame:
    """One row per trial (:data:`NOISE_COLUMNS`): its calibration against its group's median,
    its contention, and whether (and why) it is flagged."""
    concurrent = overlaps(records)
    rows = []
    groups: dict[str, tuple[Any, Any]] = {}
    for trial_id, status in zip(trials["trial_id"], trials["status"], strict=True):
        record = records.get(trial_id, TrialNoise())
        seconds, drift, shifted, group = _calibration(record.ranks)
        groups[trial_id] = group
        samples = [s for rank in record.ranks for s in (rank.before, rank.after) if s is not None]
        loads: list[float | None] = [s.loadavg[0] for s in samples if s.loadavg]
        if record.load_samples is not None:
            loads.append(record.load_samples.max)
        nodes = sorted({r.node or r.host or "?" for r in record.ranks})
        rows.append(
            {
                "trial_id": trial_id,
                "status": status,
                "calibration_s": seconds,
                "calibration_drift_pct": drift,
                "shifted_drift_pct": shifted,
                "other_busy_cores": _other_busy(record.ranks),
                "cpu_wait_pct": _max([r.cpu_wait_pct for r in record.ranks]),
                "steal_pct": _max([r.steal_pct for r in record.ranks]),
                "iowait_pct": _max([r.iowait_pct for r in record.ranks]),
                "loadavg_max": _max(loads),
                "concurrent": len(concurrent.get(trial_id, [])),
                "node": "+".join(nodes) if nodes else "",
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=NOISE_COLUMNS)
    frame["_group"] = frame["trial_id"].map(lambda t: str(groups[t]))
    ok = frame["status"].eq("succeeded") & frame["calibration_s"].notna()
    reference = frame[ok].groupby("_group")["calibration_s"].median()
    frame["calibration_ref_s"] = frame["_group"].map(reference)
    frame["calibration_dev_pct"] = 100.0 * (frame["calibration_s"] / frame["calibration_ref_s"] - 1)
    whys = [_why(row, policy, concurrent.get(row.trial_id, [])) for row in frame.itertuples()]
    frame["why"] = whys
    frame["flagged"] = [bool(w) for w in whys]
    return frame[NOISE_COLUMNS]


def _why(row: Any, policy: NoisePolicy, concurrent: list[str]) -> str:
    reasons = []
    limit = 100.0 * policy.threshold
    if np.isfinite(row.calibration_dev_pct) and abs(row.calibration_dev_pct) > limit:
        reasons.append(f"calibration {row.calibration_dev_pct:+.0f}% vs its limit's median")
    if np.isfinite(row.shifted_drift_pct) and row.shifted_drift_pct > limit:
        reasons.append(f"calibration changed {row.shifted_drift_pct:.0f}% over the trial")
    if np.isfinite(row.other_busy_cores) and row.other_busy_cores >= policy.contention_cores:
        reasons.append(f"other load {row.other_busy_cores:.1f} cores on its host")
    if np.isfinite(row.cpu_wait_pct) and row.cpu_wait_pct >= policy.wait_pct:
        reasons.append(f"waited for a CPU {row.cpu_wait_pct:.0f}% of the time")
    if np.isfinite(row.steal_pct) and row.steal_pct >= policy.steal_pct:
        reasons.append(f"steal {row.steal_pct:.0f}%")
    if np.isfinite(row.iowait_pct) and row.iowait_pct >= policy.iowait_pct:
        reasons.append(f"iowait {row.iowait_pct:.0f}%")
    if concurrent:
        shown = ", ".join(concurrent[:3]) + (" ..." if len(concurrent) > 3 else "")
        reasons.append(f"ran beside {len(concurrent)} other trial(s): {shown}")
    return "; ".join(reasons)


def has_records(frame: pd.DataFrame) -> bool:
    """Whether any trial carries a noise record (results written before the guard have none)
    or overlapped another (which their start and finish times show even then)."""
    return bool(len(frame)) and bool(
        frame["calibration_s"].notna().any()
        or frame["other_busy_cores"].notna().any()
        or (frame["concurrent"] > 0).any()
    )
