"""trainbed.contract: what the worker, the analysis and the orchestrator agree on.

It imports none of them, and all three import it. Each contract (an error kind, a file name of
the results directory, an environment variable, a label key) is defined here once.
"""
