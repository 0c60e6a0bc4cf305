"""How the local executor starts one rank's process: its environment and what runs in the child
between fork and exec.

The environment is the torchrun-style one the worker expects (RANK, WORLD_SIZE, MASTER_ADDR,
MASTER_PORT), plus the thread count set from the rank's CPU limit and the enforcement record.
In the child, before the worker's first instruction, the rank asks to die with the driver
(PR_SET_PDEATHSIG), so a killed driver leaves no trial behind; enters its network namespace
when the campaign shapes the network; joins its cgroups; and is pinned to its cores. The limits
therefore hold from the start, and nothing the worker measures runs outside them.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from trainbed.contract.env import (
    COLLECTIVE_TIMEOUT,
    ENFORCEMENT,
    JOB_COMPLETION_INDEX,
    LOCAL_RANK,
    MASTER_ADDR,
    MASTER_PORT,
    PET_PREFIX,
    RANK,
    RDZV_TIMEOUT,
    RDZV_TIMEOUT_S,
    WORLD_SIZE,
    thread_variables,
)
from trainbed.orchestrator.local.limits import RankLimits

_PR_SET_PDEATHSIG = 1
_CLONE_NEWNET = 0x40000000
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def free_port() -> int:
    """A free TCP port on loopback for rank 0's rendezvous store. Another process may take it
    before rank 0 binds it; the rendezvous then fails, and the trial with it, loudly."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_environment(
    base: dict[str, str],
    *,
    rank: int,
    world_size: int,
    port: int,
    limits: RankLimits,
    enforcement: dict[str, Any],
    collective_timeout_s: float,
    network_env: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of one rank: torchrun-style variables plus thread and limit settings;
    in a trial network, rank 0's address and the interface gloo uses (``network_env``)."""
    env = {k: v for k, v in base.items() if not k.startswith(PET_PREFIX)}
    env.pop(JOB_COMPLETION_INDEX, None)
    env.update(
        {
            RANK: str(rank),
            LOCAL_RANK: str(rank),
            WORLD_SIZE: str(world_size),
            MASTER_ADDR: "127.0.0.1",
            MASTER_PORT: str(port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(network_env or {})
    env.update(thread_variables(limits.threads))
    env[ENFORCEMENT] = json.dumps(enforcement, sort_keys=True)
    env.setdefault(COLLECTIVE_TIMEOUT, str(collective_timeout_s))
    env.setdefault(RDZV_TIMEOUT, str(RDZV_TIMEOUT_S))
    return env


def rank_preexec(paths: list[Path], cpus: tuple[int, ...] | None, netns: str | None = None) -> Any:
    """Runs in the child between fork and exec: die with the driver, enter the rank's network
    namespace (a shaped trial), join the cgroups, pin."""

    parent = os.getpid()

    def setup() -> None:
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != parent:
                # the driver died between fork and prctl: the death signal will never come
                os._exit(1)
        if netns is not None:
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if _LIBC is None or _LIBC.setns(fd, _CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns into {netns} failed")
            finally:
                os.close(fd)
        pid = str(os.getpid()).encode()
        for path in paths:
            fd = os.open(path / "cgroup.procs", os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if cpus:
            os.sched_setaffinity(0, set(cpus))

    return setup
