"""Where a result came from: the versions a rank ran with, and how its limits were enforced.

Both go into ``result.json``. The enforcement is the executor's description, passed in
``$TRAINBED_ENFORCEMENT``: the executor read it back from the system (cgroup files, the pod's
own cgroup), so the worker records it rather than guessing.
"""

from __future__ import annotations

import json
import os
import platform
from typing import Any

import torch

import trainbed
from trainbed.contract.env import ENFORCEMENT


def versions() -> dict[str, str]:
    """trainbed, torch and Python versions."""
    return {
        "trainbed": trainbed.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def read_enforcement() -> dict[str, Any]:
    """How the executor enforced the limits: ``$TRAINBED_ENFORCEMENT`` (JSON), else none."""
    raw = os.environ.get(ENFORCEMENT)
    if not raw:
        return {"mode": "none"}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        return {"mode": "unknown", "raw": raw}
    return value if isinstance(value, dict) else {"mode": "unknown", "raw": raw}
