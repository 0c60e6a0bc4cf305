"""Which enforcer holds a local campaign's limits: the best this process may use, refused before
the first trial where a resource factor's level would not hold as written.

:func:`detect_enforcer` tries cgroup v2, then v1 (:mod:`trainbed.orchestrator.local.cgroups`),
then the duty cycle (:mod:`trainbed.orchestrator.local.enforcer`); :func:`checked_enforcer` adds
the refusal of :mod:`trainbed.orchestrator.local.enforceable`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from trainbed.contract.env import ENFORCEMENT_MODE
from trainbed.contract.errors import UserError
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.local.cgroups import read_host, try_v1, try_v2
from trainbed.orchestrator.local.enforceable import refusal, unenforced
from trainbed.orchestrator.local.enforcer import DutyCycled, Enforcer, RankCgroup

__all__ = ["Enforcer", "RankCgroup", "checked_enforcer", "detect_enforcer", "read_host"]


def detect_enforcer(prefer: str | None = None) -> Enforcer:
    """The best enforcement this process may use: a cgroup, else the duty cycle.
    ``prefer`` (or TRAINBED_ENFORCEMENT_MODE) forces a mode, e.g. ``fallback`` (affinity
    alone) for tests of that path. Without a cgroup, the enforcer knows why none was usable."""
    prefer = prefer or os.environ.get(ENFORCEMENT_MODE) or None
    if prefer in ("fallback", "duty-cycle"):
        chosen = Enforcer if prefer == "fallback" else DutyCycled
        return chosen(f"{ENFORCEMENT_MODE}={prefer}")
    reasons: list[str] = []
    for mode, attempt in (("cgroup-v2", try_v2), ("cgroup-v1", try_v1)):
        if prefer in (None, mode):
            found = attempt()
            if isinstance(found, Enforcer):
                return found
            reasons.append(found)
    return DutyCycled("; ".join(reasons))


def checked_enforcer(
    factors: list[tuple[str, str]],
    trials: list[TrialSpec],
    *,
    allow_unenforced: bool,
    command: str,
) -> Enforcer:
    """The enforcer for a campaign, refused in one line (exit 2) where a resource factor's level
    would not hold as written, unless ``allow_unenforced``. ``factors`` are (name, target)."""
    enforcer = detect_enforcer()
    found = unenforced(factors, trials, enforcer.capability, sorted(os.sched_getaffinity(0)))
    if found is not None and not allow_unenforced:
        enforcer.close()
        raise UserError(refusal(found, enforcer.capability, command))
    return enforcer


def trainbed_command(verb: str, file: Path) -> str:
    """How the user would run this verb again, with the trainbed beside this Python."""
    script = Path(sys.executable).parent / "trainbed"
    return shlex.join([str(script) if script.exists() else "trainbed", verb, str(file)])
