"""trainbed.analysis: a results directory in, ANOVA tables, effects, diagnostics and figures out.

It reads only the files the worker's record contract names and never imports the orchestrator or
a Kubernetes client. For notebooks, ``trainbed.analysis.load(DIR)`` gives the pandas frames,
``trainbed.analysis.fit(DIR, response)`` the ANOVA, effects and allocation tables,
``trainbed.analysis.predict(DIR, {"cpu": "1"})`` each response at a configuration and
``trainbed.analysis.recommend(DIR, "min time s.t. accuracy >= 0.9")`` the best one for a goal.

The names are imported on first use (PEP 562), so ``trainbed predict`` does not pay for
statsmodels and matplotlib, which only the report needs.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "FitTables": "trainbed.analysis.notebook",
    "fit": "trainbed.analysis.notebook",
    "Results": "trainbed.analysis.load",
    "load": "trainbed.analysis.load",
    "predict": "trainbed.analysis.predict",
    "PredictionSet": "trainbed.analysis.predict",
    "recommend": "trainbed.analysis.recommend",
    "Recommendation": "trainbed.analysis.recommend",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
