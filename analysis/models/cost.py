"""The ``cost`` response: each trial priced by ``spec.cost`` (:mod:`trainbed.contract.cost`).

Per trial, each rank is a pod: its requests (= limits: ``resources.cpu``, ``resources.memory``,
``resources.gpu`` of trial.json) times the time it ran, from its own start and stop lines in
timestamps.jsonl, plus ``energy_j`` at the kWh price where a meter measured it. A rank whose
start or stop is missing is priced at the trial's ``wall_time_s``, and a trial with neither has
no cost (NaN), never a guess. :func:`rank_seconds` is pure; :func:`trial_costs` reads the files.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from trainbed.contract.cost import CostSpec, PodUsage, TrialCost, trial_cost
from trainbed.contract.layout import ResultsLayout, TrialLayout
from trainbed.contract.quantity import cpu_cores, memory_bytes
from trainbed.contract.records import read_timestamps

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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def priced_trial(trial_dir: Path, prices: CostSpec) -> TrialCost | None:
    """One trial's cost from its trial.json, timestamps.jsonl and result.json; None when it
    cannot be priced (no spec, no result, no run time)."""
    files = TrialLayout(trial_dir)
    spec = _read_json(files.spec_file)
    result = _read_json(files.result_file)
    if spec is None or result is None:
        return None
    ranks = int(result.get("world_size") or (spec.get("workload") or {}).get("parallelism") or 1)
    wall = result.get("wall_time_s")
    usage = pods(
        spec.get("resources") or {},
        ranks,
        rank_seconds(read_timestamps(trial_dir)),
        float(wall) if wall is not None else None,
    )
    if usage is None:
        return None
    energy = result.get("energy_j")
    return trial_cost(usage, float(energy) if energy is not None else None, prices)


def cost_spec(campaign: dict[str, Any]) -> CostSpec | None:
    """The campaign's ``spec.cost``, or None when it names no prices."""
    data = (campaign.get("spec") or {}).get("cost")
    return CostSpec.model_validate(data) if data else None


def trial_costs(root: Path, campaign: dict[str, Any], trial_ids: pd.Series) -> pd.Series:
    """The ``cost`` of each trial (NaN where it cannot be priced, or without ``spec.cost``)."""
    prices = cost_spec(campaign)
    if prices is None:
        return pd.Series(np.nan, index=trial_ids.index, dtype=float)
    layout = ResultsLayout(Path(root))
    values = []
    for trial_id in trial_ids:
        priced = priced_trial(layout.trial(str(trial_id)).root, prices)
        values.append(np.nan if priced is None else priced.total)
    return pd.Series(values, index=trial_ids.index, dtype=float)


def energy_note(trials: pd.DataFrame, campaign: dict[str, Any]) -> str | None:
    """What the report says when a kWh price is set but some priced trials had no meter."""
    prices = cost_spec(campaign)
    if prices is None or prices.kwh == 0 or "energy" not in trials:
        return None
    unmetered = int((trials[COST].notna() & trials["energy"].isna()).sum())
    if not unmetered:
        return None
    return (
        f"{unmetered} priced trial(s) had no energy meter: their cost leaves energy out "
        "(nothing measured it; it is not estimated)"
    )
