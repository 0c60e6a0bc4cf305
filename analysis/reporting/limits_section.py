"""The report's Limits section, its flag at the top, and the ``limits`` key of ``--json``.

It hands each trial's ``result.json``, as the loader read it through the contract, to
:func:`~trainbed.analysis.models.limits.campaign_limits` (pure), and says the answer three ways:
a banner at the top naming every flagged factor, a table per resource (requested, mode, enforced
by, read back, what the trial could use), and JSON. The effect rows and figures of a flagged
factor say "not enforced" through :func:`mark_effects` and ``SectionOptions``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from trainbed.analysis.models.limits import (
    NOT_ENFORCED,
    FactorLimits,
    LevelLimits,
    campaign_limits,
    flagged_factors,
    show_value,
)
from trainbed.analysis.reporting import setup_section, tables
from trainbed.analysis.reporting.setup_section import Setup
from trainbed.analysis.reporting.text import json_safe
from trainbed.contract.campaign import Campaign
from trainbed.contract.records import Result


def fixed_resources(campaign: Campaign) -> dict[str, Any]:
    """The campaign's base resources, with the contract's defaults (memory 2Gi where unset),
    as target -> value; GPUs only where some are asked for."""
    values = campaign.spec.trial.resources.model_dump()
    return {f"resources.{k}": v for k, v in values.items() if v is not None and (k != "gpu" or v)}


def _verdict(level: LevelLimits) -> str:
    return {True: "yes", False: "**no**", None: "unknown"}[level.enforced]


def _several(target: str, values: Iterable[float]) -> str:
    return ", ".join(show_value(target, v) for v in values)


def _rows(limits: list[FactorLimits]) -> pd.DataFrame:
    rows = []
    for factor in limits:
        for level in factor.levels:
            rows.append(
                {
                    "factor": factor.factor or "(every trial)",
                    "target": f"`{factor.target}`",
                    "level": level.level,
                    "trials": len(level.trials),
                    "requested": "?"
                    if level.requested is None
                    else show_value(factor.target, level.requested),
                    "mode": ", ".join(level.modes),
                    "enforced by": ", ".join(f"`{b}`" for b in level.enforced_by) or "nothing",
                    "read back": _several(factor.target, level.read_back) or "not read back",
                    "could use": _several(factor.target, level.effective) or "unknown",
                    "enforced as written": _verdict(level),
                    "notes": "; ".join(level.notes),
                }
            )
    return pd.DataFrame(rows)


def allowed_unenforced(records: Mapping[str, Result]) -> list[str]:
    """Trials the executor ran with ``--allow-unenforced`` (``enforcement.allow_unenforced``)."""
    return sorted(t for t, r in records.items() if r.enforcement.get("allow_unenforced") is True)


def banner(limits: list[FactorLimits], allowed: int = 0) -> str:
    """The flag at the top of the report: one line per factor whose levels were not
    distinguishably enforced, and the trials run with ``--allow-unenforced`` (empty when
    neither)."""
    flagged = [f for f in limits if f.flagged and f.factor]
    lines = [
        f"> **{NOT_ENFORCED.capitalize()}: {f.factor}** (`{f.target}`): " + "; ".join(f.why) + "."
        for f in flagged
    ]
    if flagged:
        lines.append(
            ">\n> Every effect row and figure of "
            + ("this factor" if len(flagged) == 1 else "these factors")
            + f' says "{NOT_ENFORCED}": its effect estimates what its levels did not control. '
            "See **Limits** below."
        )
    if allowed:
        lines.append(
            (">\n" if flagged else "")
            + f"> **{allowed} trial(s) ran with `--allow-unenforced`**: limits that nothing could "
            "hold as written did not stop them."
        )
    return "\n".join(lines) + "\n\n" if lines else ""


def section(limits: list[FactorLimits], records: Mapping[str, Result]) -> str:
    """The Limits section: how each resource level was held, and what was read back."""
    text = "\n## Limits\n\n"
    modes: dict[str, int] = {}
    for record in records.values():
        mode = str(record.enforcement.get("mode") or "none")
        modes[mode] = modes.get(mode, 0) + 1
    text += (
        "Enforcement: "
        + (
            ", ".join(f"{m} ({n} trial{'s' if n > 1 else ''})" for m, n in modes.items())
            or "no records"
        )
        + ". For each resource level: what was requested, what held it, what was read back from "
        "the system, and what the trial could use (the read back, or the CPUs the fallback "
        "pinned it to).\n"
    )
    allowed = allowed_unenforced(records)
    if allowed:
        text += (
            f"\n**{len(allowed)} trial(s) ran with `--allow-unenforced`**: a level nothing could "
            "hold as written ran anyway.\n"
        )
    if not limits:
        return text + "\nNo factor sets a resource, and no resource was recorded.\n"
    if not any(f.factor for f in limits):
        text += "\nNo factor sets a resource: the table shows what every trial ran under.\n"
    text += "\n" + tables.markdown(_rows(limits))
    for factor in limits:
        if factor.flagged:
            text += f"\n- **{factor.factor}: {NOT_ENFORCED}**: " + "; ".join(factor.why) + ".\n"
    unheld = [
        f for f in limits if f.factor is None and any(lv.enforced is False for lv in f.levels)
    ]
    for factor in unheld:
        text += (
            f"\n- `{factor.target}` ({factor.levels[0].level}, every trial) was not enforced as "
            "written; it is not a factor, so no effect depends on it, but every trial ran "
            "without it.\n"
        )
    return text


def limits_json(limits: list[FactorLimits]) -> dict[str, Any]:
    """The ``limits`` key of ``--json``: per factor its levels (requested, mode, enforced_by,
    read_back, effective; "no limit" is null), ``flagged`` and ``why``."""

    def value(v: float) -> float | None:
        return None if math.isinf(v) else v

    def factor_json(f: FactorLimits) -> dict[str, Any]:
        return {
            "factor": f.factor,
            "target": f.target,
            "unit": f.unit,
            "flagged": f.flagged,
            "why": list(f.why),
            "levels": [
                {
                    "level": lv.level,
                    "trials": list(lv.trials),
                    "requested": None if lv.requested is None else value(lv.requested),
                    "mode": list(lv.modes),
                    "enforced_by": list(lv.enforced_by),
                    "read_back": [value(v) for v in lv.read_back],
                    "effective": [value(v) for v in lv.effective],
                    "enforced": lv.enforced,
                    "notes": list(lv.notes),
                }
                for lv in f.levels
            ],
        }

    return json_safe(
        {
            "flagged": sorted(flagged_factors(limits)),
            "factors": [factor_json(f) for f in limits if f.factor],
            "fixed": [factor_json(f) for f in limits if not f.factor],
        }
    )


def add_to_json(path: Path, key: str, value: Any) -> None:
    """Put ``key`` into the JSON object at ``path`` (``quality.json``, which ``--json`` prints)."""
    data = json.loads(path.read_text()) if path.exists() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2) + "\n")


@dataclass(frozen=True)
class LimitsReport:
    """What the report says about limits and setup, computed once near its top."""

    limits: list[FactorLimits]
    setups: list[Setup]
    records: dict[str, Result]

    @property
    def flagged(self) -> frozenset[str]:
        return flagged_factors(self.limits)

    def banner(self) -> str:
        return banner(self.limits, len(allowed_unenforced(self.records)))

    def markdown(self) -> str:
        """The Limits section, then the Setup section."""
        return section(self.limits, self.records) + setup_section.section(self.setups)

    def write_json(self, path: Path) -> None:
        """``limits`` and ``setup`` into ``quality.json``."""
        data = limits_json(self.limits)
        data["allow_unenforced"] = allowed_unenforced(self.records)
        add_to_json(path, "limits", data)
        add_to_json(path, "setup", json_safe(setup_section.setup_json(self.setups)))


def assess_limits(
    campaign: Campaign,
    factors: list[dict[str, Any]],
    trials: pd.DataFrame,
    records: Mapping[str, Result],
) -> LimitsReport:
    """Judge the trials' limits and setups from their records (as the loader read them)."""
    records = {str(t): records[str(t)] for t in trials["trial_id"] if str(t) in records}
    limits = campaign_limits(factors, trials, records, fixed_resources(campaign))
    return LimitsReport(limits, setup_section.setups(records), records)
