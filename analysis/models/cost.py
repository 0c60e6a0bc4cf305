"""The ``cost`` response: each trial priced by ``spec.cost`` (:mod:`trainbed.contract.cost`).

Per trial, each rank is a pod: its requests (= limits: ``resources.cpu``, ``resources.memory``,
``resources.gpu`` of trial.json) times the time it ran, from its own start and stop lines in
timestamps.jsonl, plus ``energy_j`` at the kWh price where a meter measured it. A rank whose
start or stop is missing is priced at the trial's ``wall_time_s``, and a trial with neither has
no cost (NaN), never a guess. :func:`rank_seconds` is pure; :func:`trial_costs` reads the files.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainbed.contract.campaign import Campaign
from trainbed.contract.cost import CostSpec, PodUsage, TrialCost, trial_cost
from trainbed.contract.errors import RecordError
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.quantity import cpu_cores, memory_bytes
from trainbed.contract.records import Result, read_result, read_timestamps
from trainbed.contract.trial import read_trial_spec

#: The response's column in the trials frame.
COST = "cost"


def rank_seconds(lines: list[dict[str, Any]]) -> dict[int, float]:
    """Each rank's run time in seconds, from its first start to its last stop line."""
    starts: dict[int, float] = {}
    stops: dict[int, float] = {}
    for line in lines:
        try:
            rank = int(line["rank"])
            stamp = datetime.fromisoformat(str(line["time"]).replace("Z", "+00:00")).timestamp()
        except (KeyError, TypeError, ValueError):
            continue
        if line.get("event") == "start":
            starts[rank] = min(stamp, starts.get(rank, stamp))
        elif line.get("event") == "stop":
            stops[rank] = max(stamp, stops.get(rank, stamp))
    return {r: stops[r] - starts[r] for r in starts if r in stops and stops[r] >= starts[r]}


def pods(
    resources: dict[str, Any], ranks: int, seconds: dict[int, float], fallback_s: float | None
) -> list[PodUsage] | None:
    """The trial's pods (one per rank), or None when no rank's run time is known."""
    cores = cpu_cores(resources.get("cpu") or 0)
    memory = memory_bytes(resources.get("memory") or 0)
    gpus = int(resources.get("gpu") or 0)
    out = []
    for rank in range(ranks):
        run = seconds.get(rank, fallback_s)
        if run is None:
            return None
        out.append(PodUsage(cores, memory, gpus, float(run)))
    return out


def priced_trial(
    trial_dir: Path, prices: CostSpec, result: Result | None = None
) -> TrialCost | None:
    """One trial's cost from its trial.json, timestamps.jsonl and result.json (``result`` when
    the caller has read it already); None when it cannot be priced (no spec, no result, no run
    time, or a record that does not read)."""
    try:
        spec = read_trial_spec(trial_dir)
        result = result if result is not None else read_result(trial_dir)
    except RecordError:
        return None
    if spec is None or result is None:
        return None
    usage = pods(
        spec.resources.model_dump(),
        int(result.world_size or spec.workload.parallelism or 1),
        rank_seconds(read_timestamps(trial_dir)),
        result.wall_time_s,
    )
    if usage is None:
        return None
    return trial_cost(usage, result.energy_j, prices)


def cost_spec(campaign: Campaign) -> CostSpec | None:
    """The campaign's ``spec.cost``, or None when it names no prices."""
    return campaign.spec.cost


def trial_costs(
    root: Path, campaign: Campaign, trial_ids: pd.Series, records: Mapping[str, Result]
) -> pd.Series:
    """The ``cost`` of each trial (NaN where it cannot be priced, or without ``spec.cost``);
    ``records`` are the results the loader read, so none is read twice."""
    prices = cost_spec(campaign)
    if prices is None:
        return pd.Series(np.nan, index=trial_ids.index, dtype=float)
    layout = ResultsLayout(Path(root))
    values = []
    for trial_id in trial_ids:
        result = records.get(str(trial_id))
        trial_dir = layout.trial(str(trial_id)).root
        priced = None if result is None else priced_trial(trial_dir, prices, result)
        values.append(np.nan if priced is None else priced.total)
    return pd.Series(values, index=trial_ids.index, dtype=float)
