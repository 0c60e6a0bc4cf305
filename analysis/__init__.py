"""trainbed.analysis: a results directory in, ANOVA tables, effects, diagnostics and figures out.

It reads only the files the worker's record contract names and never imports the orchestrator or
a Kubernetes client. For notebooks, ``trainbed.analysis.load(DIR)`` gives the pandas frames,
``trainbed.analysis.fit(DIR, response)`` the ANOVA, effects and allocation tables,
``trainbed.analysis.predict(DIR, {"cpu": "1"})`` each response at a configuration and
``trainbed.analysis.recommend(DIR, "min time s.t. accuracy >= 0.9")`` the best one for a goal.

``fit`` is imported on first use (PEP 562), so ``trainbed predict`` does not pay for
statsmodels and matplotlib, which only the report needs.

The flow, one subpackage a stratum: ``reading`` (records in, through the contract's models, to
frames) -> ``models`` (pure arithmetic: ANOVA, effects, predictions, verdicts) -> ``plots``
(figures from the models' tables) -> ``reporting`` (the sections and pages ``trainbed analyze``
writes). Each imports only the strata before it.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from trainbed.analysis.models.predict import PredictionSet, predict
from trainbed.analysis.models.recommend import Recommendation, recommend

# Bound here, not lazily: each shares its name with its module, and a lazy name would lose to
# the module once anything imported it (``trainbed.analysis.reading.load`` would be the module).
from trainbed.analysis.reading.load import Results, load

#: Imported on first use: the notebook API pulls in statsmodels.
_LAZY = {"FitTables": "trainbed.analysis.notebook", "fit": "trainbed.analysis.notebook"}

__all__ = [
    "FitTables",
    "PredictionSet",
    "Recommendation",
    "Results",
    "fit",
    "load",
    "predict",
    "recommend",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
