"""The notebook API: one call per table of the report.

``trainbed.analysis.load(DIR)`` gives the trials, epochs and iterations frames;
``trainbed.analysis.fit(DIR, response)`` gives the ANOVA, the effects and the allocation of
variation of one response as DataFrames, the same numbers ``trainbed analyze`` writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainbed.analysis.models.anova import Fit, fit_response
from trainbed.analysis.models.units import unit as unit_of
from trainbed.analysis.reading.load import RESPONSE_FIELDS, Results, load
from trainbed.analysis.reporting.design_notes import is_screening
from trainbed.contract.responses import DERIVED_RESPONSES


@dataclass(frozen=True)
class FitTables:
    """One response's tables. ``effects`` holds Jain's ``q`` and Montgomery's ``effect`` (= 2q)
    with the ``mean`` (q0) first; ``allocation`` is each term's share of the variation."""

    response: str
    unit: str
    anova: pd.DataFrame
    effects: pd.DataFrame
    allocation: pd.DataFrame
    fit: Fit


def fit(directory: str | Path | Results, response: str, *, log: bool = False) -> FitTables:
    """Fit ``response`` (one of :data:`RESPONSE_FIELDS`) over a results directory's succeeded
    trials; ``log`` fits its natural log. Raises ``NotFittable`` with the reason when it cannot."""
    if response not in RESPONSE_FIELDS and response not in DERIVED_RESPONSES:
        known = ", ".join([*RESPONSE_FIELDS, *DERIVED_RESPONSES])
        raise ValueError(f"unknown response {response!r}: choose from {known}")
    results = directory if isinstance(directory, Results) else load(directory)
    result = fit_response(
        results.trials,
        results.factors,
        response,
        log=log,
        main_effects_only=is_screening(results.campaign),
    )
    return FitTables(
        response=response,
        unit=unit_of(response, log=log),
        anova=result.anova,
        effects=result.effects,
        allocation=result.allocation,
        fit=result,
    )
