"""trainbed.orchestrator: campaign spec, design engine, driver, executors and the CLI.

Dependencies go one way: spec and design (pure) <- driver (pure decisions) <- executors and the CLI
(adapters with side effects). Only the adapter modules touch processes, files or the cluster.
"""
