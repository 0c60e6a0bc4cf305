"""The Pareto set of configurations over two or three responses. Pure.

Each response is minimised (times, energy) or maximised (accuracy, throughput). A configuration
is in the Pareto set when no other is at least as good on every response and better on one: the
energy–time trade-off Zeus optimises, over the design points a campaign ran.

Candidates that cannot be compared are left out with their reason, never ranked on an invented
number:

- ``censored``: it never reached the target on a censored response (time or energy to
  accuracy). A configuration that misses the target is not a way to reach it;
- ``missing``: nothing measured one of the responses (no energy meter, a failed run).

Equal configurations (a tie on every response) dominate neither one another: both stay in the set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Responses where more is better; every other response (times, energy) is minimised.
MAXIMISED = frozenset({"accuracy", "throughput"})

OPTIMAL = "optimal"
DOMINATED = "dominated"
CENSORED = "censored"
MISSING = "missing"


@dataclass(frozen=True)
class Objective:
    """One response of the trade-off and its direction."""

    response: str
    maximise: bool

    @classmethod
    def of(cls, response: str) -> Objective:
        return cls(response, response in MAXIMISED)

    @property
    def word(self) -> str:
        return "maximise" if self.maximise else "minimise"


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` beats ``b``: no worse anywhere and better somewhere (both as costs)."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_status(
    values: pd.DataFrame,
    objectives: list[Objective],
    censored: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per row of ``values`` (one column per objective's response): ``status`` (optimal,
    dominated, censored or missing) and ``dominated_by`` (the index labels of the rows that
    dominate it, comma-separated). ``censored`` holds a boolean column per censored response
    (True where the row never reached the target); a censored row is never compared."""
    names = [o.response for o in objectives]
    assert len(set(names)) == len(names) >= 2, "two or three distinct responses"
    flags = pd.Series(False, index=values.index)
    if censored is not None:
        for name in names:
            if name in censored:
                flags |= censored[name].reindex(values.index).fillna(False).astype(bool)
    present = values[names].notna().all(axis=1)
    status = pd.Series(MISSING, index=values.index, dtype=object)
    status[flags] = CENSORED
    comparable = ~flags & present
    signs = np.array([-1.0 if o.maximise else 1.0 for o in objectives])
    costs = values.loc[comparable, names].to_numpy(dtype=float) * signs
    labels = list(values.index[comparable])
    by: dict[object, str] = {}
    for i, label in enumerate(labels):
        beaten = [str(labels[j]) for j in range(len(labels)) if dominates(costs[j], costs[i])]
        status[label] = DOMINATED if beaten else OPTIMAL
        by[label] = ", ".join(beaten)
    dominated_by = pd.Series([by.get(label, "") for label in values.index], index=values.index)
    return pd.DataFrame({"status": status, "dominated_by": dominated_by})


def pareto_set(
    values: pd.DataFrame, objectives: list[Objective], censored: pd.DataFrame | None = None
) -> list[object]:
    """The index labels of the Pareto-optimal rows, in the order of ``values``."""
    status = pareto_status(values, objectives, censored)["status"]
    return list(status.index[status == OPTIMAL])
