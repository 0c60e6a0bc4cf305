"""Joining the DDP world: a bounded, retried rendezvous, and small collective helpers.

In Kubernetes rank 0's DNS name and port come up after the other pods start, so the first
attempts fail; the worker retries until ``TRAINBED_RDZV_TIMEOUT`` and then says clearly what it
waited for. Collectives get ``TRAINBED_COLLECTIVE_TIMEOUT``, so a dead peer ends in an error
within a bound, never a hang.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from trainbed.contract.env import (
    COLLECTIVE_TIMEOUT,
    COLLECTIVE_TIMEOUT_S,
    RDZV_TIMEOUT,
    RDZV_TIMEOUT_S,
)
from trainbed.worker.rank_env import RankEnv


class RendezvousError(RuntimeError):
    """The process group could not be formed in time."""


def _seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def init_group(env: RankEnv, backend: str) -> None:
    """Form the process group, retrying failed attempts until the rendezvous deadline."""
    rdzv_timeout = _seconds(RDZV_TIMEOUT, RDZV_TIMEOUT_S)
    collective = timedelta(seconds=_seconds(COLLECTIVE_TIMEOUT, COLLECTIVE_TIMEOUT_S))
    deadline = time.monotonic() + rdzv_timeout
    delay = 0.5
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            dist.init_process_group(
                backend,
                init_method=f"tcp://{env.master_addr}:{env.master_port}",
                rank=env.rank,
                world_size=env.world_size,
                timeout=min(collective, timedelta(seconds=max(1.0, deadline - time.monotonic()))),
            )
            if collective > timedelta(0):
                _set_timeout(collective)
            return
        except (RuntimeError, ValueError, OSError, TimeoutError) as err:
            last = err
            if dist.is_initialized():
                dist.destroy_process_group()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise RendezvousError(
        f"rank {env.rank} could not join a world of {env.world_size} at "
        f"{env.master_addr}:{env.master_port} within {rdzv_timeout:g} s: {last}"
    )


def _set_timeout(timeout: timedelta) -> None:
    """The rendezvous used a shorter store timeout; collectives get the full one.

    ``dist.set_timeout`` is public from torch 2.6 on; older releases only have the private
    ``_set_pg_timeout`` (deprecated, with a FutureWarning, where the public one exists).
    """
    setter = getattr(dist, "set_timeout", None)
    if setter is None:  # pragma: no cover - torch < 2.6
        from torch.distributed.distributed_c10d import _set_pg_timeout as setter
    try:
        setter(timeout, None)
    except RuntimeError:  # pragma: no cover - a backend that cannot change it keeps its own
        pass


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all ranks (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's decision, for everyone (e.g. 'the target was met, stop')."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def broadcast_values(values: list[float], device: torch.device) -> list[float]:
    """Rank 0's numbers, for everyone (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.broadcast(tensor, src=0)
    return tensor.tolist()


def all_gather(value: object) -> list[object]:
    """Every rank's ``value`` (picklable), in rank order; ``[value]`` when not distributed."""
    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def close_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
