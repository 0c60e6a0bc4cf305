"""trainbed.analysis: a results directory in, ANOVA tables, effects, diagnostics and figures out.

It reads only the files the worker's record contract names and never imports the orchestrator or
a Kubernetes client. ``trainbed.analysis.load(DIR)`` gives pandas frames for notebooks.
"""

from trainbed.analysis.load import Results, load

__all__ = ["Results", "load"]
