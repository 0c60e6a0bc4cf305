"""Runs a trial's network plan on this host (ip, tc, iptables, the delay line), reads back what is
in force, and probes, before the first trial, whether this machine can do it at all.

The plan is :mod:`.network`'s; this module only runs commands and parses nothing itself. A
campaign that sets ``resources.bandwidth`` or ``resources.latency`` on a machine that cannot
enforce them (not root, no ``ip``/``tc``, a kernel without the qdiscs) stops before its first
trial with one line saying why (:func:`local_network`): it never runs unshaped while claiming
otherwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import TrainbedError, UserError
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.local.network import (
    DEVICE,
    PREFIX,
    DelayMethod,
    NetworkPlan,
    Shaping,
    applied,
    has_delay_rule,
    network_key,
    nfqueue_rule,
    plan_network,
    read_egress,
    wants_network,
)
from trainbed.orchestrator.plan.checks import network_fields

CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
#: How long the delay line may take to bind its queues (a Python start-up, no torch).
DELAY_LINE_READY_S = 20.0


class NetworkError(TrainbedError):
    """A trial's network could not be set up (a command failed); names the command."""


class NetworkUnavailable(Exception):
    """This machine cannot shape a trial's network; the message says why, in one line."""


def _run(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise NetworkError(
            f"`{' '.join(command)}` failed: {detail[-1] if detail else proc.returncode}"
        )
    return proc


def _die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


@dataclass
class HostNetwork:
    """Sets up and tears down trials' networks; one per local executor."""

    delay_by: DelayMethod | None
    python: str = sys.executable
    _delay_lines: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def plan(self, results_root: Path, trial: TrialSpec) -> NetworkPlan:
        key = network_key(str(results_root), trial.campaign, trial.trial_id)
        shaping = Shaping.of(trial.resources)
        return plan_network(key, trial.workload.parallelism, shaping, self.delay_by)

    def up(self, plan: NetworkPlan) -> dict[str, Any]:
        """Make the trial's network and return ``enforcement.network``, read back from tc."""
        self.down(plan)  # what a killed driver left under these names
        try:
            for command in plan.setup_commands():
                _run(command)
            delay_line_s = None
            if plan.delay_rules():
                delay_line_s = self._start_delay_line(plan)
                for command in plan.delay_rules():
                    _run(command)
                for link in plan.ranks:
                    listing = ["iptables", "-w", "-t", "mangle", "-S", "PREROUTING"]
                    rules = _run(["ip", "netns", "exec", link.netns, *listing])
                    if not has_delay_rule(rules.stdout):
                        raise NetworkError(f"the delay rule is not in {link.netns}: {rules.stdout}")
            return self.read_back(plan, delay_line_s)
        except BaseException:
            self.down(plan)
            raise

    def read_back(self, plan: NetworkPlan, delay_line_s: float | None = None) -> dict[str, Any]:
        """``enforcement.network`` from what ``tc`` (and the delay line) say is in force;
        NetworkError where it is not what the trial asked for."""
        egress = {
            link.rank: read_egress(
                _run(["tc", "-n", link.netns, "-j", "qdisc", "show", "dev", DEVICE]).stdout
            )
            for link in plan.ranks
        }
        try:
            return applied(plan, egress, delay_line_s)
        except ValueError as err:
            raise NetworkError(f"network of {plan.bridge}: {err}") from None

    def down(self, plan: NetworkPlan) -> None:
        """Remove the trial's namespaces, links and delay line; quiet where nothing is left."""
        proc = self._delay_lines.pop(plan.key, None)
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(_scratch(plan), ignore_errors=True)  # also a killed driver's
        for command in plan.teardown_commands():
            _run(command, check=False)

    def _start_delay_line(self, plan: NetworkPlan) -> float:
        """Start the trial's delay line, wait until it has bound every queue; its delay."""
        scratch = _scratch(plan)
        scratch.mkdir(mode=0o700)  # down() removed any left; a folder there now is not ours
        ready, log = scratch / "ready.json", scratch / "delay-line.log"
        command = [self.python, "-m", "trainbed.orchestrator.local.delay_line"]
        command += ["--delay-s", repr(plan.shaping.delay_s), "--ready", str(ready)]
        command += [link.netns for link in plan.ranks]
        with open(log, "wb") as err:
            proc = subprocess.Popen(  # noqa: S603 - our own module, our own arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - a prctl only
            )
        self._delay_lines[plan.key] = proc
        deadline = time.monotonic() + DELAY_LINE_READY_S
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                detail = log.read_text(errors="replace").strip().splitlines()
                raise NetworkError(
                    f"the delay line did not start: {detail[-1] if detail else proc.returncode}"
                )
            time.sleep(0.02)
        return float(json.loads(ready.read_text())["delay_s"])


def _scratch(plan: NetworkPlan) -> Path:
    """The delay line's folder (its ready file and log), named for the trial like its
    namespaces, so the rerun after a killed driver finds it and removes it."""
    return Path(tempfile.gettempdir()) / f"{PREFIX}-{plan.key}-delay-line"


# --- can this machine do it? ----------------------------------------------------------------


def _capabilities() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def probe(need_delay: bool) -> DelayMethod | None:
    """How this host adds delay (None when none is needed); raises NetworkUnavailable(why).

    It tries for real, in a scratch namespace that it removes: a namespace, a veth pair, a tbf,
    then netem, then (without netem) the iptables NFQUEUE rule and a bound delay-line queue.
    """
    caps = _capabilities()
    if not (caps >> CAP_NET_ADMIN & 1 and caps >> CAP_SYS_ADMIN & 1):
        raise NetworkUnavailable(
            "network namespaces and tc need root (CAP_NET_ADMIN and CAP_SYS_ADMIN); "
            f"this process runs as uid {os.geteuid()} without them"
        )
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise NetworkUnavailable(f"{' and '.join(missing)} not found (apt-get install iproute2)")
    ns = f"{PREFIX}-probe-{os.getpid()}"
    tc = ["tc", "-n", ns, "qdisc"]
    try:
        veth = ["ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1"]
        tbf = ["tbf", "rate", "1mbit", "burst", "65536", "limit", "1048576"]
        for command, what in [
            (["ip", "netns", "add", ns], "cannot create a network namespace"),
            (veth, "cannot create a veth pair"),
            ([*tc, "add", "dev", "p0", "root", "handle", "1:", *tbf], "tc cannot add a tbf qdisc"),
        ]:
            proc = _run(command, check=False)
            if proc.returncode != 0:
                raise NetworkUnavailable(f"{what}: {_last_line(proc)}")
        if not need_delay:
            return None
        netem = _run(
            [*tc, "replace", "dev", "p0", "root", "handle", "1:", "netem", "delay", "1ms"],
            check=False,
        )
        if netem.returncode == 0:
            return "netem"
        why = _nfqueue_unavailable(ns)
        if why is None:
            return "nfqueue"
        raise NetworkUnavailable(
            f"resources.latency needs the netem qdisc (tc: {_last_line(netem)}) or iptables' "
            f"NFQUEUE target ({why})"
        )
    finally:
        _run(["ip", "netns", "del", ns], check=False)


def _nfqueue_unavailable(ns: str) -> str | None:
    if shutil.which("iptables") is None:
        return "iptables not found"
    rule = _run(["ip", "netns", "exec", ns, *nfqueue_rule("-A")], check=False)
    if rule.returncode != 0:
        return _last_line(rule)
    bind = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.local.delay_line", "--probe", ns],
        capture_output=True,
        text=True,
    )
    return None if bind.returncode == 0 else _last_line(bind)


def _last_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = (proc.stderr or proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit {proc.returncode}"


def local_network(
    campaign: Campaign, trials: list[TrialSpec], probe: Any = probe
) -> HostNetwork | None:
    """The network enforcer for a local campaign, or None when it sets no network key.

    Raises UserError (one line, exit 2) before any trial runs where the keys cannot be enforced
    here. ``probe`` is injectable so the refusal is testable where the machine could comply.
    """
    fields = network_fields(campaign)
    if not fields:
        return None
    where = ", ".join(f"{key} ({source})" for key, source in fields.items())
    if any(t.resources.gpu > 0 and wants_network(t.resources) for t in trials):
        raise UserError(
            f"{where}: not enforced for local GPU trials: NCCL's shared-memory and peer-to-peer "
            "paths between ranks on one machine bypass the network namespace"
        )
    need_delay = any(Shaping.of(t.resources).delay_s for t in trials)
    try:
        delay_by = probe(need_delay)
    except NetworkUnavailable as err:
        raise UserError(f"{where}: cannot be enforced on this machine: {err}") from None
    return HostNetwork(delay_by)


@contextlib.contextmanager
def trial_network(network: HostNetwork, results_root: Path, trial: TrialSpec) -> Any:
    """A trial's network for the length of a ``with`` block (tests and benchmarks)."""
    plan = network.plan(results_root, trial)
    record = network.up(plan)
    try:
        yield plan, record
    finally:
        network.down(plan)
