"""The local executor: each trial is a group of worker processes on this machine (gloo over
loopback; NCCL where each rank has GPUs of its own).

It starts ``parallelism`` ranks of ``trainbed worker`` with the torchrun-style environment the
worker expects, puts each rank under its limits (:mod:`trainbed.orchestrator.local.limits`), watches
them, and turns what it saw into the trial's recorded outcome: an OOM kill becomes
``oom_killed``, a stop for time ``timed_out``, a crash ``failed`` with the exit codes and the end
of the log. Workers die with the driver (PR_SET_PDEATHSIG), so a killed driver leaves no trial
running behind it; the partial output is moved aside when ``--resume`` reruns the trial.
With a :class:`~trainbed.orchestrator.local.gpu_host.GpuHost`, each rank gets its own GPUs
(``CUDA_VISIBLE_DEVICES``), the trial's power limit and clock are set before its ranks start and
restored once they have exited, and ``execution.cooldown_s`` is waited before each trial.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from trainbed.contract.env import COLLECTIVE_TIMEOUT_S
from trainbed.contract.errors import UserError
from trainbed.contract.layout import TrialLayout
from trainbed.contract.noise import LoadSamples
from trainbed.contract.records import (
    Result,
    amend_result,
    append_timestamp,
    now_iso,
    read_result,
    read_timestamps,
)
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.driver import Observation, Phase
from trainbed.orchestrator.local.cooldown import wait_cooldown
from trainbed.orchestrator.local.enforcer import Enforcer, RankCgroup
from trainbed.orchestrator.local.gpu_host import GpuHost, rank_gpu_env, rank_gpus
from trainbed.orchestrator.local.limits import RankLimits, enforced_flags, plan_limits
from trainbed.orchestrator.local.network import NetworkPlan, wants_network
from trainbed.orchestrator.local.network_host import HostNetwork
from trainbed.orchestrator.local.rank_process import free_port, rank_environment, rank_preexec
from trainbed.orchestrator.outcome import TrialObservation, outcome
from trainbed.orchestrator.results_dir import ResultsDir

#: How long the other ranks get to notice a dead peer and record it, before they are killed.
PEER_GRACE_S = 20.0
#: How long a stopped trial gets between SIGTERM and SIGKILL.
STOP_GRACE_S = 15.0


@dataclass
class _Rank:
    rank: int
    proc: subprocess.Popen[bytes]
    group: RankCgroup
    limits: RankLimits
    log: IO[bytes]
    exit_code: int | None = None
    exit_time: float | None = None  # when the exit was seen


@dataclass
class _Trial:
    spec: TrialSpec
    directory: Path
    ranks: list[_Rank]
    started: float
    started_at: str
    enforcement: dict[str, Any]
    stop_status: str | None = None
    stop_reason: str = ""
    kill_at: float | None = None
    memory_exceeded: bool = False
    finished_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    network: NetworkPlan | None = None  # the trial's namespaces, where the campaign shapes
    #: the noise guard's view from here: trials that ran at the same time, and the host's
    #: 1-minute load average at every poll (result.concurrent_trials, result.load_samples)
    overlap: set[str] = field(default_factory=set)
    loads: list[float] = field(default_factory=list)

    def alive(self) -> list[_Rank]:
        return [r for r in self.ranks if r.exit_code is None]

    def contention(self) -> dict[str, Any]:
        """What the executor saw of the host while this trial ran, as result fields."""
        samples = None
        if self.loads:
            mean = sum(self.loads) / len(self.loads)
            samples = LoadSamples(mean=mean, max=max(self.loads), samples=len(self.loads))
        return {"concurrent_trials": sorted(self.overlap), "load_samples": samples}


class LocalExecutor:
    """Trials as process groups on this machine; implements the driver's Executor protocol."""

    def __init__(
        self,
        results: ResultsDir,
        enforcer: Enforcer,
        *,
        python: str = sys.executable,
        collective_timeout_s: float = COLLECTIVE_TIMEOUT_S,
        network: HostNetwork | None = None,
        allow_unenforced: bool = False,
        gpus: GpuHost | None = None,
        cooldown_s: float | None = None,
    ) -> None:
        self.results = results
        self.enforcer = enforcer
        #: the run was started with --allow-unenforced (every enforcement record says so)
        self.allow_unenforced = allow_unenforced
        #: set where the campaign sets resources.bandwidth/latency: every trial gets namespaces
        self.network = network
        self.python = python
        self.collective_timeout_s = collective_timeout_s
        self.running: dict[str, _Trial] = {}
        self._available = sorted(os.sched_getaffinity(0))
        #: the host's GPUs where some trial asks for one
        self.gpus = gpus
        self.cooldown_s = cooldown_s

    # --- observe -------------------------------------------------------------------------

    def observe(self) -> dict[str, Observation]:
        observed: dict[str, Observation] = {}
        trials_root = self.results.layout.trials_dir
        if trials_root.exists():
            for directory in trials_root.iterdir():
                if directory.name in self.running or not directory.is_dir():
                    continue
                result = _safe_read(directory)
                if result is not None:
                    observed[directory.name] = Observation(Phase.RECORDED, status=result.status)
        for trial_id, trial in self.running.items():
            self._poll(trial)
            if trial.alive():
                observed[trial_id] = Observation(
                    Phase.RUNNING, started=trial.started, stopping=trial.stop_status is not None
                )
            else:
                observed[trial_id] = Observation(Phase.FINISHED, started=trial.started)
        return observed

    def _poll(self, trial: _Trial) -> None:
        now = time.time()
        if trial.alive():
            _sample_load(trial.loads)
        for rank in trial.ranks:
            if rank.exit_code is None:
                code = rank.proc.poll()
                if code is not None:
                    rank.exit_code = code
                    rank.exit_time = now
                    rank.log.close()
                elif self.enforcer.over_memory(rank.group, rank.proc.pid, rank.limits):
                    trial.memory_exceeded = True
                    self._signal(trial, signal.SIGKILL)
        alive = trial.alive()
        if not alive:
            trial.finished_at = trial.finished_at or now_iso()
            return
        crashed = [r for r in trial.ranks if r.exit_code not in (None, 0)]
        if crashed and trial.kill_at is None:
            trial.kill_at = now + PEER_GRACE_S
        if trial.kill_at is not None and now >= trial.kill_at:
            self._signal(trial, signal.SIGKILL)

    # --- start and stop ------------------------------------------------------------------

    def start(self, trial: TrialSpec) -> None:
        assert trial.trial_id not in self.running
        network = self._network(trial)
        moved = self.results.set_aside_partial(trial.trial_id)
        directory = self.results.write_trial(trial)
        world = trial.workload.parallelism
        plans = plan_limits(trial.resources, world, self._available)
        assignment = self.gpus.assign(trial) if self.gpus is not None else []
        extra: dict[str, Any] = {"previous_attempt": str(moved)} if moved else {}
        if self.cooldown_s:
            devices = [d for rank in assignment for d in rank]
            read, idle = self.gpus.thermometer(devices) if self.gpus else (None, [])
            extra["cooldown"] = wait_cooldown(self.cooldown_s, read, idle)
        shaped = self.network.up(network) if network and self.network else None
        groups = [self.enforcer.prepare(trial.trial_id, r, p) for r, p in enumerate(plans)]
        enforcement = {
            **self.enforcer.describe(plans[0]),
            **enforced_flags(self.enforcer.capability, plans, self.allow_unenforced),
        }
        read_back = [self.enforcer.read_back(group) for group in groups]
        if any(read_back):
            enforcement["ranks_read_back"] = read_back
        if assignment and self.gpus is not None:
            tuned = self.gpus.tune(trial, [d for rank in assignment for d in rank])
            enforcement = {**enforcement, **tuned}
            extra["gpus"] = rank_gpus(assignment)
        if shaped is not None:
            enforcement["network"] = shaped
        port = free_port()
        ranks: list[_Rank] = []
        started = time.time()
        started_at = now_iso()
        spec_path = TrialLayout(directory).spec_file
        for rank, (limits, group) in enumerate(zip(plans, groups, strict=True)):
            env = rank_environment(
                dict(os.environ),
                rank=rank,
                world_size=world,
                port=port,
                limits=limits,
                enforcement=enforcement,
                collective_timeout_s=self.collective_timeout_s,
                network_env=network.rank_env() if network else None,
            )
            if self.gpus is not None:  # a CPU trial on a GPU host sees none
                env.update(rank_gpu_env(assignment[rank] if assignment else ()))
            log_file = TrialLayout(directory).log_file(rank)
            log_file.parent.mkdir(parents=True, exist_ok=True)
            log = open(log_file, "ab")  # noqa: SIM115 - closed when the rank exits
            pin = limits.cpus if self.enforcer.mode == "fallback" else None
            proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "trainbed.worker",
                    "--spec",
                    str(spec_path),
                    "--out",
                    str(directory),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=directory,
                preexec_fn=rank_preexec(  # noqa: PLW1509 - see rank_preexec
                    group.paths, pin, network.ranks[rank].netns if network else None
                ),
                process_group=0,
            )
            ranks.append(_Rank(rank=rank, proc=proc, group=group, limits=limits, log=log))
        self.enforcer.started(trial.trial_id, [r.proc.pid for r in ranks], plans)
        others = set(self.running)
        self.running[trial.trial_id] = _Trial(
            spec=trial,
            directory=directory,
            ranks=ranks,
            started=started,
            started_at=started_at,
            enforcement=enforcement,
            extra=extra,
            overlap=others,
            network=network,
        )
        for other in others:
            self.running[other].overlap.add(trial.trial_id)

    def _network(self, trial: TrialSpec) -> NetworkPlan | None:
        """The trial's network plan, or None where the campaign shapes nothing. A trial that asks
        for shaping from an executor without a network enforcer is refused, never run unshaped."""
        if self.network is None:
            if wants_network(trial.resources):
                raise UserError(
                    f"trial {trial.trial_id} sets resources.bandwidth or resources.latency, but "
                    "this local executor was started without network enforcement"
                )
            return None
        return self.network.plan(self.results.root, trial)

    def _network_down(self, trial: _Trial) -> None:
        if trial.network is not None and self.network is not None:
            self.network.down(trial.network)

    def stop(self, trial_id: str, status: str, reason: str) -> None:
        trial = self.running.get(trial_id)
        if trial is None or trial.stop_status is not None:
            return
        trial.stop_status = status
        trial.stop_reason = reason
        self._signal(trial, signal.SIGTERM)
        trial.kill_at = time.time() + STOP_GRACE_S

    def _signal(self, trial: _Trial, sig: signal.Signals) -> None:
        for rank in trial.alive():
            try:
                os.killpg(rank.proc.pid, sig)
            except ProcessLookupError:
                pass

    def shutdown(self) -> None:
        """Kill every running trial without recording it (its output is set aside on resume)."""
        for trial in self.running.values():
            self._signal(trial, signal.SIGKILL)
            self.enforcer.finished(trial.spec.trial_id)
            for rank in trial.ranks:
                rank.proc.wait()
                rank.log.close()
                self.enforcer.cleanup(rank.group)
            self._network_down(trial)
        self.running.clear()
        self.close()

    def close(self) -> None:
        """Restore every GPU setting a trial still holds (the driver's end, however it ends)."""
        if self.gpus is not None:
            self.gpus.restore_all()

    # --- record ----------------------------------------------------------------------------

    def record(self, trial_id: str) -> Result:
        trial = self.running.get(trial_id)
        if trial is None:  # recorded before; idempotent
            result = read_result(self.results.trial_dir(trial_id))
            assert result is not None, f"{trial_id} has neither a process nor a result"
            return result
        for rank in trial.ranks:
            rank.proc.wait()
        measured = self.enforcer.finished(trial_id)
        oom = any(self.enforcer.oom_killed(r.group) for r in trial.ranks)
        for rank in trial.ranks:
            self.enforcer.cleanup(rank.group)
        self._network_down(trial)
        if self.gpus is not None:
            errors = self.gpus.restore(trial_id)
            if errors:
                trial.extra["gpu_restore_errors"] = errors
        seen = TrialObservation(
            exit_codes={r.rank: r.exit_code for r in trial.ranks},
            exit_times={r.rank: r.exit_time for r in trial.ranks if r.exit_time is not None},
            oom_killed=oom,
            memory_exceeded=trial.memory_exceeded,
            stopped=(trial.stop_status, trial.stop_reason) if trial.stop_status else None,
            started=trial.started,
            started_at=trial.started_at,
            finished_at=trial.finished_at or now_iso(),
            enforcement={**trial.enforcement, **measured},
            log_tails={
                r.rank: _tail(TrialLayout(trial.directory).log_file(r.rank)) for r in trial.ranks
            },
            extra={**trial.extra, **trial.contention()},
        )
        _complete_timestamps(trial.directory, {r.rank: r.exit_code for r in trial.ranks})
        result = amend_result(trial.directory, lambda worker: outcome(trial.spec, worker, seen))
        assert result is not None, "outcome() always gives a result"
        del self.running[trial_id]
        return result

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.25) if self.running else min(timeout, 0.05))


def _sample_load(loads: list[float]) -> None:
    """Append the host's 1-minute load average (a cheap read; nothing where there is none)."""
    try:
        loads.append(os.getloadavg()[0])
    except OSError:
        pass


def _tail(path: Path, size: int = 4000) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode(errors="replace")
    except OSError:
        return ""


def _safe_read(directory: Path) -> Result | None:
    try:
        return read_result(directory)
    except ValueError:
        return None  # an unreadable result is not a recorded one


def _complete_timestamps(directory: Path, exit_codes: dict[int, int | None]) -> None:
    """Add a ``stop`` line for every rank that died before it could write its own."""
    stopped = {
        int(line.get("rank", -1))
        for line in read_timestamps(directory)
        if line.get("event") == "stop"
    }
    for rank in exit_codes:
        if rank not in stopped:
            append_timestamp(directory, "stop", rank, source="executor", exit_code=exit_codes[rank])
