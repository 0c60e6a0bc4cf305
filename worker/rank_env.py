"""Who this process is in the DDP world: rank, world size and master, from the environment.

torchrun-style variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK) win. An Indexed
Job's pod has no RANK of its own, so JOB_COMPLETION_INDEX stands in for it. Kubeflow's
PyTorchJob sets PET_* names. Pure: a mapping in, a validated value out, unit-tested without
processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from trainbed.contract.env import (
    DEFAULT_MASTER_PORT,
    LOCAL_RANK_NAMES,
    MASTER_ADDR_NAMES,
    MASTER_PORT_NAMES,
    RANK_NAMES,
    WORLD_SIZE_NAMES,
)


class RankEnvError(ValueError):
    """The environment does not describe a valid place in a DDP world."""


@dataclass(frozen=True)
class RankEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int(env: Mapping[str, str], names: tuple[str, ...], default: int | None) -> int | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError as err:
                raise RankEnvError(f"{name}={value!r} is not an integer") from err
    return default


def rank_env(env: Mapping[str, str], world_size_hint: int | None = None) -> RankEnv:
    """Read the rank environment; ``world_size_hint`` (the trial's parallelism) fills a gap."""
    world = _int(env, WORLD_SIZE_NAMES, world_size_hint)
    world = 1 if world is None else world
    rank = _int(env, RANK_NAMES, 0)
    local = _int(env, LOCAL_RANK_NAMES, 0)
    addr = next((env[n] for n in MASTER_ADDR_NAMES if env.get(n)), "127.0.0.1")
    port = _int(env, MASTER_PORT_NAMES, DEFAULT_MASTER_PORT)
    assert rank is not None and local is not None and port is not None
    if world < 1:
        raise RankEnvError(f"world size must be at least 1, got {world}")
    if not 0 <= rank < world:
        raise RankEnvError(f"rank {rank} is outside a world of size {world}")
    if not 0 < port < 65536:
        raise RankEnvError(f"master port {port} is not a TCP port")
    return RankEnv(
        rank=rank, world_size=world, local_rank=local, master_addr=addr, master_port=port
    )
