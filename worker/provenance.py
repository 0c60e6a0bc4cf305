"""Where a result came from: the versions a rank ran with, and how its limits were enforced.

Both go into ``result.json``. The enforcement is the executor's description, passed in
``$TRAINBED_ENFORCEMENT``. Where limits are a cgroup's (a pod's, whose limits the kubelet set, or
a local cgroup), the worker adds ``read_back``: what its own cgroup's files say
(:mod:`~trainbed.worker.cgroup_limits`), and ``limits_confirmed``, whether that is the CPU and
memory the description names. So a pod's record says what the kubelet enforced, not only what
trainbed asked for.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any

import torch

import trainbed
from trainbed.contract.env import ENFORCEMENT
from trainbed.contract.quantity import cpu_cores, memory_bytes
from trainbed.worker.cgroup_limits import read_own_limits


def versions() -> dict[str, str]:
    """trainbed, torch and Python versions."""
    return {
        "trainbed": trainbed.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def read_enforcement() -> dict[str, Any]:
    """How the limits were enforced: ``$TRAINBED_ENFORCEMENT`` (JSON), else none; with the
    own cgroup's limits read back where a cgroup enforces them."""
    raw = os.environ.get(ENFORCEMENT)
    if not raw:
        return {"mode": "none"}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"mode": "unknown", "raw": raw}
    if not isinstance(value, dict):
        return {"mode": "unknown", "raw": raw}
    mode = str(value.get("mode", ""))
    if mode == "kubernetes" or mode.startswith("cgroup"):
        try:
            value["read_back"] = read_own_limits()
        except OSError as err:
            value["read_back"] = None
            value["read_back_error"] = str(err)
        value["limits_confirmed"] = limits_confirmed(value)
    return value


def limits_confirmed(enforcement: dict[str, Any]) -> bool | None:
    """Whether the cgroup read back enforces the ``cpu`` and ``memory`` the description names
    (None: it names neither, or nothing was read). CPU to within 1e-5 of a core."""
    back = enforcement.get("read_back") or {}
    checks: list[bool] = []
    cpu, memory = enforcement.get("cpu"), enforcement.get("memory")
    try:
        if cpu is not None and back:
            got = back.get("cpu_limit")
            checks.append(got is not None and abs(got - cpu_cores(cpu)) < 1e-5)
        if memory is not None and back:
            checks.append(back.get("memory_limit_bytes") == memory_bytes(memory))
    except ValueError:
        return None
    return all(checks) if checks else None
