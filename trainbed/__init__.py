"""trainbed: factorial training-performance experiments, run locally or on Kubernetes.

The three subpackages map to the top-level folders: ``orchestrator/`` (spec, design, driver,
executors, CLI), ``worker/`` (the training process and its result records) and ``analysis/``
(results directory to ANOVA report).
"""

__version__ = "0.1.0"
