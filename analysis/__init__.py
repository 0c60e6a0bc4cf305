"""trainbed.analysis: a results directory in, ANOVA tables, effects, diagnostics and figures out.

It reads only the files the worker's record contract names and never imports the orchestrator or
a Kubernetes client. For notebooks, ``trainbed.analysis.load(DIR)`` gives the pandas frames and
``trainbed.analysis.fit(DIR, response)`` the ANOVA, effects and allocation tables.
"""

from trainbed.analysis.load import Results, load
from trainbed.analysis.notebook import FitTables, fit

__all__ = ["FitTables", "Results", "fit", "load"]
