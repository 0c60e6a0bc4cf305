"""Accuracy and loss on a whole held-out set (validation or test), each sample counted once.

The seeds' testbed evaluated 1/world_size of the test set and called it the test accuracy. Here,
when the ranks hold identical models (plain DDP, or one rank), each rank takes every
world_size-th sample and the counts are summed. Under local SGD the ranks' models differ between
averagings, so a sharded count would blend several models; then rank 0 evaluates the whole set
with its own model and broadcasts the numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from trainbed.worker.distributed import all_sum, broadcast_values
from trainbed.worker.rank_env import RankEnv


@torch.no_grad()
def _counts(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    criterion: nn.Module,
    batch: int,
) -> list[float]:
    """[correct, samples, loss sum] of ``model`` on (x, y)."""
    model.eval()
    correct, loss_sum = 0.0, 0.0
    for start in range(0, len(x), batch):
        bx, by = x[start : start + batch].to(device), y[start : start + batch].to(device)
        logits = model(bx)
        loss_sum += float(criterion(logits, by).item()) * len(by)
        correct += float((logits.argmax(1) == by).sum().item())
    return [correct, float(len(x)), loss_sum]


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    env: RankEnv,
    device: torch.device,
    criterion: nn.Module,
    *,
    identical_models: bool = True,
    batch: int = 1024,
) -> tuple[float, float]:
    """(accuracy, mean loss) over all of (x, y); every rank must call it (it is collective)."""
    if identical_models or not env.distributed:
        counts = _counts(
            model,
            x[env.rank :: env.world_size],
            y[env.rank :: env.world_size],
            device,
            criterion,
            batch,
        )
        correct, total, loss_sum = all_sum(counts, device)
    else:
        counts = _counts(model, x, y, device, criterion, batch) if env.is_main else [0.0] * 3
        correct, total, loss_sum = broadcast_values(counts, device)
    assert total == len(x), "every sample is counted exactly once"
    return correct / total, loss_sum / total
