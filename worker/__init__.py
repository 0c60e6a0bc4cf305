"""trainbed.worker: the training process that runs one rank of one trial.

It is the same code on this machine and in a pod. It owns the trial-spec contract
(:mod:`trainbed.contract.trial`) and the file formats it writes (:mod:`trainbed.contract.records`),
which the analysis reads. It never imports the orchestrator or the Kubernetes client.
"""
