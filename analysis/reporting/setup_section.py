"""The report's Setup section: each distinct machine and software stack the trials ran on,
listed once, with the trials that ran on it (Hoefler and Belli's rule 9: document the setup).

A setup is ``result.json``'s ``host`` (:class:`~trainbed.contract.host.HostInfo`, all but the
per-trial CPU affinity) together with its ``versions`` (trainbed, torch, Python). Pure:
:func:`setups` is a function of the records; trials whose record has no ``host`` (written
before it existed, or by an executor for a worker that never finished) form a setup of their own,
"not recorded", rather than being counted on a machine nobody read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from trainbed.analysis.reporting import tables
from trainbed.contract.host import SETUP_FIELDS, HostInfo
from trainbed.contract.records import Result

#: The ``versions`` keys that belong to a setup.
VERSION_KEYS: tuple[str, ...] = ("trainbed", "torch", "python")


@dataclass(frozen=True)
class Setup:
    """One distinct setup and the trials that ran on it."""

    host: HostInfo | None
    versions: tuple[tuple[str, str | None], ...]
    trials: tuple[str, ...]
    #: the CPU affinities (CPUs the rank might use) seen among those trials
    affinities: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        host = self.host.model_dump() if self.host else None
        if host is not None:
            host.pop("cpu_affinity", None)
        return {
            "host": host,
            "versions": dict(self.versions),
            "cpu_affinity": list(self.affinities),
            "trials": list(self.trials),
        }


def setups(records: Mapping[str, Result]) -> list[Setup]:
    """Distinct setups in the order their first trial appears in ``records``."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    first: dict[tuple[Any, ...], tuple[HostInfo | None, tuple[tuple[str, str | None], ...]]] = {}
    affinity: dict[tuple[Any, ...], list[int]] = {}
    for trial_id, record in records.items():
        versions = tuple((k, record.versions.get(k)) for k in VERSION_KEYS)
        host = record.host
        key = (host.setup_key() if host else None, versions)
        groups.setdefault(key, []).append(trial_id)
        first.setdefault(key, (host, versions))
        seen = affinity.setdefault(key, [])
        if host and host.cpu_affinity is not None and host.cpu_affinity not in seen:
            seen.append(host.cpu_affinity)
    return [
        Setup(first[k][0], first[k][1], tuple(ids), tuple(sorted(affinity[k])))
        for k, ids in groups.items()
    ]


def _cell(value: Any) -> str:
    return "—" if value is None else str(value)


def section(found: list[Setup]) -> str:
    """Markdown: one column per setup (few setups, many fields), then which trials ran where."""
    text = (
        "\n## Setup\n\nWhat the trials ran on, as rank 0 read it back from its system "
        "(`result.json`'s `host` and `versions`). — marks what could not be read there (no GPU, "
        "no NVML); *not recorded*, records written without a `host`.\n\n"
    )
    if not found:
        return text + "_(no trial left a result)_\n"
    rows = []
    for name in [*SETUP_FIELDS, "cpu_affinity", *VERSION_KEYS]:
        row: dict[str, str] = {"field": name}
        for i, setup in enumerate(found, start=1):
            if name in VERSION_KEYS:
                value: Any = dict(setup.versions).get(name)
            elif setup.host is None:
                value = "not recorded"
            elif name == "cpu_affinity":
                value = ", ".join(map(str, setup.affinities)) or None
            else:
                value = getattr(setup.host, name)
            row[f"setup {i}"] = _cell(value)
        rows.append(row)
    text += tables.markdown(pd.DataFrame(rows))
    if len(found) == 1:
        return text + f"\nAll {len(found[0].trials)} trials with a result ran on this setup.\n"
    text += "\n" + "".join(
        f"- setup {i}: {len(s.trials)} trial(s): {', '.join(s.trials)}\n"
        for i, s in enumerate(found, start=1)
    )
    return text + (
        "\nThe trials ran on more than one setup: where the setup changes with a factor's level, "
        "the two are confounded.\n"
    )


def setup_json(found: list[Setup]) -> list[dict[str, Any]]:
    return [s.as_dict() for s in found]
