"""Were a campaign's resource levels enforced as written? Per resource factor and level: what
was requested, what enforced it and what was read back; a factor is flagged when two of its
levels were not distinguishably enforced. Pure: a function of the factors, the trials frame and
the trials' records (:mod:`.limits_section` reads them and writes the report's section).

A resource level is an independent variable only if something held it. The local fallback pins
a rank to ceil(cpu) cores, so ``500m`` and ``1`` both run on one core and the "cpu effect" is
noise; a watchdog that kills on resident memory is not a memory limit. The evidence per trial:

- ``resources.cpu``: ``enforcement.read_back.cpu_limit`` (the cgroup's quota, cores); under the
  fallback the rank's affinity (``len(enforcement.affinity)`` cores) is what it could use;
- ``resources.memory``: ``enforcement.read_back.memory_limit_bytes``; a watchdog enforces none;
- ``resources.bandwidth``/``latency``: ``enforcement.network.bandwidth_bps``/``latency_s`` where
  ``tc`` read them back (not in pods: the CNI's annotations are never read back);
- ``resources.gpu``: the GPUs ``result.gpus`` gives rank 0 (``device == "cpu"``: none);
- ``resources.gpu_power_limit``/``gpu_clock``: ``enforcement.gpu_power_limit_w``/``gpu_clock_mhz``.

Where the executor records ``cpu_enforced``/``memory_enforced`` they decide; otherwise the mode
does. A level whose evidence nothing recorded stays unknown (``enforced`` None): it is shown as
"not read back" and never flagged on a guess.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from trainbed.contract.quantity import bandwidth_bps, cpu_cores, latency_s, memory_bytes
from trainbed.contract.records import Result

#: The spec's targets that set a resource, and the unit their values are compared in.
UNITS: dict[str, str] = {
    "resources.cpu": "cores",
    "resources.memory": "bytes",
    "resources.bandwidth": "bit/s",
    "resources.latency": "s",
    "resources.gpu": "GPUs per rank",
    "resources.gpu_power_limit": "W",
    "resources.gpu_clock": "MHz",
}
#: What the flag says on every effect row and figure of a flagged factor.
NOT_ENFORCED = "not enforced"
#: "no limit" (a null bandwidth, a 0 ms latency) compares as infinite.
NO_LIMIT = math.inf
#: The effects frame's column that says "not enforced" on a flagged factor's rows (present only
#: when some factor is flagged).
LIMITS_COLUMN = "limits"
#: Relative tolerance of "read back as requested" (tc keeps bytes/s; NVML rounds watts).
TOLERANCE = 1e-3


def is_resource(target: str) -> bool:
    return target in UNITS or target.startswith("resources.gpu")


@dataclass(frozen=True)
class Evidence:
    """One trial's answer for one resource: the request, who held it, what was read back."""

    requested: float | None  # NO_LIMIT for "no limit"; None when the level cannot be parsed
    mode: str
    enforced_by: str | None
    read_back: float | None  # None: nothing read back; NO_LIMIT: read back as "no limit"
    effective: float | None  # what the trial could use: the read back, or the fallback's cores
    enforced: bool | None  # None: nothing recorded says
    note: str = ""


@dataclass(frozen=True)
class LevelLimits:
    """One level of a resource factor over the trials that ran at it."""

    level: str
    trials: tuple[str, ...]
    requested: float | None
    modes: tuple[str, ...]
    enforced_by: tuple[str, ...]
    read_back: tuple[float, ...]
    effective: tuple[float, ...]
    enforced: bool | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FactorLimits:
    """A resource factor (or a resource every trial shares, ``factor`` None): its levels, and
    whether its levels were distinguishably enforced."""

    factor: str | None
    target: str
    levels: tuple[LevelLimits, ...]
    flagged: bool = False
    why: tuple[str, ...] = field(default_factory=tuple)

    @property
    def unit(self) -> str:
        return UNITS.get(self.target, "")


def show_value(target: str, value: float) -> str:
    """A value in the resource's own terms: 0.5 cores, 1.5 GiB, 20 Mbit/s, 5 ms."""
    if math.isinf(value):
        return "no limit"
    if target == "resources.memory":
        for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
            if value >= size:
                return f"{value / size:g} {unit}"
        return f"{value:g} B"
    if target == "resources.bandwidth":
        for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
            if value >= size:
                return f"{value / size:g} {unit}"
        return f"{value:g} bit/s"
    if target == "resources.latency":
        return f"{value * 1e3:g} ms"
    if target == "resources.cpu":
        return f"{value:g} core" + ("" if value == 1 else "s")
    if target == "resources.gpu":
        return f"{value:g} GPU" + ("" if value == 1 else "s")
    unit = {"resources.gpu_power_limit": "W", "resources.gpu_clock": "MHz"}.get(target, "")
    return f"{value:g} {unit}".strip()


def _near(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= max(1e-5, TOLERANCE * abs(b))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, list):  # one value per device: the same on all, or none
        values = {v for v in value if v is not None}
        return float(values.pop()) if len(values) == 1 and None not in value else None
    return float(value) if isinstance(value, int | float) else None


def _requested(target: str, level: Any) -> float | None:
    if level is None or (isinstance(level, float) and math.isnan(level)):
        return NO_LIMIT
    try:
        if target == "resources.cpu":
            return cpu_cores(str(level))
        if target == "resources.memory":
            return float(memory_bytes(str(level)))
        if target == "resources.bandwidth":
            return float(bandwidth_bps(str(level)))
        if target == "resources.latency":
            return latency_s(str(level)) or NO_LIMIT  # "0ms" adds nothing
        return float(level)
    except (TypeError, ValueError):
        return None


def _kernel(target: str, enforcement: Mapping[str, Any], requested: float | None) -> Evidence:
    """CPU and memory: a cgroup's read back, the fallback's affinity, the executor's verdict."""
    cpu = target == "resources.cpu"
    mode = str(enforcement.get("mode") or "none")
    key = "cpu" if cpu else "memory"
    by = enforcement.get(f"{key}_enforced_by")
    if by is None and mode == "kubernetes":
        by = "pod limits (kubelet)"
    back = enforcement.get("read_back") or {}
    read = _number(back.get("cpu_limit" if cpu else "memory_limit_bytes"))
    effective = read
    if read is None and back.get("cgroup_version") and not back.get("errors"):
        read = effective = NO_LIMIT  # read, and the cgroup has no limit
    if effective is None and cpu and mode == "fallback" and enforcement.get("affinity"):
        effective = float(len(enforcement["affinity"]))
    said = enforcement.get(f"{key}_enforced")
    if said is True and read is None and requested is not None:
        effective = requested  # held as written by other means (a duty cycle), on its word
    note = ""
    if requested is None:
        enforced = None
    elif read is not None:
        enforced = _near(read, requested) and said is not False
        if not _near(read, requested):
            note = f"read back {show_value(target, read)}, not {show_value(target, requested)}"
        elif said is False:
            note = "the executor records it as not enforced"
    elif isinstance(said, bool):
        enforced = said
    elif mode == "fallback":
        enforced = cpu and effective is not None and _near(effective, requested)
        if not enforced:
            note = (
                f"{by or 'the fallback'} gives {show_value(target, effective)} for "
                f"{show_value(target, requested)}"
                if cpu and effective is not None
                else f"{by or 'the fallback'} kills a rank above it: no limit holds it"
            )
    elif mode in ("none", "unknown"):
        enforced, note = False, "no executor enforced it"
    else:
        enforced, note = None, "not read back"
    return Evidence(requested, mode, by, read, effective, enforced, note)


def _network(target: str, enforcement: Mapping[str, Any], requested: float | None) -> Evidence:
    """Bandwidth and latency: what ``tc`` (and the delay line) read back into ``network``."""
    net = enforcement.get("network") or {}
    key = "bandwidth" if target == "resources.bandwidth" else "latency"
    mode = str(net.get("mode") or "none")
    by = net.get(f"{key}_enforced_by")
    if not net:
        asked = requested is not None and requested != NO_LIMIT
        note = "no network enforcement recorded" if asked else ""
        return Evidence(requested, mode, None, None, None if asked else NO_LIMIT, not asked, note)
    if not net.get("read_back"):
        return Evidence(requested, mode, by, None, None, None, "not read back")
    value = _number(net.get("bandwidth_bps" if key == "bandwidth" else "latency_s"))
    read = NO_LIMIT if value is None or value == 0 else value
    enforced = None if requested is None else _near(read, requested)
    note = "" if enforced is not False else f"read back {read:g}, not {requested:g}"
    return Evidence(requested, mode, by, read, read, enforced, note)


def _gpu(target: str, record: Result, requested: float | None) -> Evidence:
    """GPUs per rank from ``result.gpus``; power limit and clock from NVML's read back."""
    enforcement = record.enforcement
    mode = str(enforcement.get("mode") or "none")
    if target == "resources.gpu":
        by = enforcement.get("gpu_enforced_by") or (
            "nvidia.com/gpu" if mode == "kubernetes" else None
        )
        read: float | None = None
        if record.gpus is not None:
            read = float(sum(1 for g in record.gpus if g.rank == 0))
            by = by or "result.gpus (assigned per rank)"
        elif record.device == "cpu":
            read = 0.0
        enforced = None if read is None or requested is None else _near(read, requested)
        note = "ran on the CPU" if enforced is False and read == 0 else ""
        return Evidence(requested, mode, by, read, read, enforced, note)
    if requested == NO_LIMIT:
        return Evidence(requested, mode, None, None, NO_LIMIT, True)
    name = target.removeprefix("resources.")
    unit_key = {"gpu_power_limit": "gpu_power_limit_w", "gpu_clock": "gpu_clock_mhz"}.get(name)
    read = _number(enforcement.get(unit_key)) if unit_key else None
    by = enforcement.get("gpu_tuned_by")
    said = enforcement.get(f"{name}_confirmed")
    if isinstance(said, bool):
        enforced: bool | None = said
    elif name == "gpu_clock":
        enforced = None  # an idle GPU reads below its lock: recorded, not judged
    else:
        enforced = None if read is None or requested is None else _near(read, requested)
    effective = requested if enforced else read
    note = "" if read is not None else "not read back"
    return Evidence(requested, mode, by, read, effective, enforced, note)


def evidence(target: str, level: Any, record: Result) -> Evidence:
    """One trial's evidence for one resource at ``level`` (as written in the campaign)."""
    requested = _requested(target, level)
    if target in ("resources.cpu", "resources.memory"):
        return _kernel(target, record.enforcement, requested)
    if target in ("resources.bandwidth", "resources.latency"):
        return _network(target, record.enforcement, requested)
    return _gpu(target, record, requested)


def _level_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return str(value)


def _distinct(values: Iterable[Any]) -> tuple[Any, ...]:
    out: list[Any] = []
    for value in values:
        if value is not None and value not in out:
            out.append(value)
    return tuple(out)


def level_limits(
    target: str, level: Any, trials: list[str], records: Mapping[str, Result]
) -> LevelLimits:
    """The level's evidence over its trials that left a record."""
    found = [evidence(target, level, records[t]) for t in trials if t in records]
    verdicts = [e.enforced for e in found]
    enforced = (
        False if False in verdicts else True if verdicts and all(verdicts) else None
    )  # one trial not enforced makes the level so; unknowns never make it enforced
    notes = _distinct(e.note or None for e in found)
    if not found:
        notes = ("no trial at this level left a result",)
    return LevelLimits(
        level=_level_text(level),
        trials=tuple(trials),
        requested=_requested(target, level),
        modes=_distinct(e.mode for e in found),
        enforced_by=_distinct(e.enforced_by for e in found),
        read_back=_distinct(e.read_back for e in found),
        effective=_distinct(e.effective for e in found),
        enforced=enforced,
        notes=notes,
    )


def flag(target: str, levels: Iterable[LevelLimits]) -> tuple[str, ...]:
    """Why two levels of a factor were not distinguishably enforced; empty when they were:
    a level not enforced as written, or two levels with an effective value in common."""
    levels = list(levels)
    why = [
        f"level {lv.level}: not enforced as written"
        + (f" ({'; '.join(lv.notes)})" if lv.notes else "")
        for lv in levels
        if lv.enforced is False
    ]
    for i, a in enumerate(levels):
        for b in levels[i + 1 :]:
            shared = [v for v in a.effective if any(_near(v, w) for w in b.effective)]
            if shared:
                same = ", ".join(show_value(target, v) for v in shared)
                why.append(f"levels {a.level} and {b.level} could both use {same}")
    return tuple(why)


def _trials_at(trials: pd.DataFrame, name: str, levels: list[Any]) -> dict[str, list[str]]:
    """Trial IDs per level (as written), matched on the design's column."""
    texts = [_level_text(lv) for lv in levels]
    at: dict[str, list[str]] = {t: [] for t in texts}
    for trial_id, value in zip(trials["trial_id"], trials[name], strict=True):
        text = _level_text(value)
        if text not in at:  # a number written 1 in YAML and read back 1.0 by pandas
            number = _requested("", value)
            matches = [t for t in texts if number is not None and _requested("", t) == number]
            text = matches[0] if matches else text
        at.setdefault(text, []).append(str(trial_id))
    return at


def campaign_limits(
    factors: list[dict[str, Any]],
    trials: pd.DataFrame,
    records: Mapping[str, Result],
    fixed: Mapping[str, Any] | None = None,
) -> list[FactorLimits]:
    """Every resource factor with its levels and flag, then (``factor`` None) each resource in
    ``fixed`` (target -> value, the campaign's base resources) that no factor varies."""
    out = []
    varied = set()
    for factor in factors:
        target = str(factor.get("target", ""))
        if not is_resource(target):
            continue
        varied.add(target)
        written = list(factor.get("levels") or [])
        at = _trials_at(trials, factor["name"], written)
        levels = tuple(
            level_limits(target, lv, at.get(_level_text(lv), []), records) for lv in written
        )
        why = flag(target, levels)
        out.append(FactorLimits(factor["name"], target, levels, bool(why), why))
    everyone = [str(t) for t in trials["trial_id"]]
    for target, value in (fixed or {}).items():
        if is_resource(target) and target not in varied and value is not None:
            level = level_limits(target, value, everyone, records)
            out.append(FactorLimits(None, target, (level,)))
    return out


def flagged_factors(limits: Iterable[FactorLimits]) -> frozenset[str]:
    return frozenset(f.factor for f in limits if f.flagged and f.factor)


def term_flag(term: str, flagged: Iterable[str]) -> str:
    """``NOT_ENFORCED`` for an effect term (``cpu``, ``batch_size:cpu``) that involves a flagged
    factor, else ``""``."""
    names = set(flagged)
    return NOT_ENFORCED if names and set(term.split(":")) & names else ""


def mark_effects(effects: pd.DataFrame, flagged: Iterable[str]) -> pd.DataFrame:
    """``effects`` with a ``limits`` column saying "not enforced" on every term of a flagged
    factor (its main effect and its interactions); unchanged when nothing is flagged."""
    names = frozenset(flagged)
    if not names or "term" not in effects:
        return effects
    return effects.assign(**{LIMITS_COLUMN: [term_flag(t, names) for t in effects["term"]]})


def term_labels(effects: pd.DataFrame) -> list[str]:
    """Each row's term, with " (not enforced)" where :func:`mark_effects` marked it."""
    marks = effects[LIMITS_COLUMN] if LIMITS_COLUMN in effects else [""] * len(effects)
    return [f"{t} ({m})" if m else str(t) for t, m in zip(effects["term"], marks, strict=True)]
