"""The optimisers a workload can name (the CIFAR-10 data-loading study compares five), built one
way everywhere.

sgd and sgd-nesterov use momentum 0.9 (Nesterov needs momentum, and plain SGD without it is
rarely what an experiment means); the adaptive methods keep torch's defaults apart from ``lr``.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def make_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    """The named optimiser over ``params`` with learning rate ``lr``."""
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    if name == "sgd-nesterov":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr)
    if name == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}")
