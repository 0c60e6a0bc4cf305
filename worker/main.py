"""One rank of one trial (``python -m trainbed.worker --spec TRIAL.json --out TRIAL_DIR``).

It sets the thread count from the CPU limit before torch does any work, records start/stop
timestamps, turns SIGTERM into a stop at the next iteration boundary, and makes sure rank 0
always leaves a ``result.json``: ``succeeded``, ``terminated`` or ``failed`` with the reason.
Exit codes: 0 succeeded, 143 terminated, 1 failed, 2 a bad spec or environment.

Environment it reads (besides the rank variables of :mod:`trainbed.worker.rank_env`):
``TRAINBED_RDZV_TIMEOUT`` and ``TRAINBED_COLLECTIVE_TIMEOUT`` (seconds; their defaults are
:mod:`trainbed.contract.env`'s ``RDZV_TIMEOUT_S`` and ``COLLECTIVE_TIMEOUT_S``),
``TRAINBED_ENFORCEMENT`` (JSON recorded as ``result.enforcement``), ``TRAINBED_NODE_NAME`` (the
Kubernetes node, recorded in ``result.noise``), ``TRAINBED_DATA`` and the mirror variables of
:mod:`trainbed.worker.datasets`.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from trainbed.contract.env import THREAD_VARIABLES, thread_variables
from trainbed.contract.gpu import rank_cuda_index
from trainbed.contract.quantity import cpu_cores, threads_for_cpu
from trainbed.contract.records import append_timestamp, write_result
from trainbed.contract.trial import TrialSpec
from trainbed.worker.process_clock import process_start
from trainbed.worker.rank_env import RankEnvError, rank_env

EXIT_TERMINATED = 143


class _Stop:
    """Set by SIGTERM; the training loop polls it between iterations."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self) -> bool:
        return self.requested

    def handler(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _threads(spec: TrialSpec) -> int:
    """The thread count the executor decided from the CPU limit (OMP_NUM_THREADS, set by both
    executors with :func:`threads_for_cpu`); run by hand without it, the same rule here."""
    given = os.environ.get(THREAD_VARIABLES[0], "")
    if given.isdigit() and int(given) >= 1:
        return int(given)
    return threads_for_cpu(spec.resources.cpu, _available_cpus())


def _gpu(spec: TrialSpec, local_rank: int) -> str | None:
    """The rank's first GPU (``cuda:N``) on a GPU trial where CUDA is there, else None."""
    import torch

    if spec.resources.gpu == 0 or not torch.cuda.is_available():
        return None
    index = rank_cuda_index(local_rank, spec.resources.gpu, torch.cuda.device_count())
    return f"cuda:{index}"


def main_worker(spec_path: Path, out: Path) -> int:
    try:
        spec = TrialSpec.model_validate_json(Path(spec_path).read_text())
    except (OSError, ValidationError) as err:
        print(f"trainbed worker: bad trial spec {spec_path}: {err}", file=sys.stderr)
        return 2
    try:
        env = rank_env(os.environ, spec.workload.parallelism)
    except RankEnvError as err:
        print(f"trainbed worker: {err}", file=sys.stderr)
        return 2
    if env.world_size != spec.workload.parallelism:
        print(
            f"trainbed worker: WORLD_SIZE {env.world_size} differs from the trial's "
            f"parallelism {spec.workload.parallelism}",
            file=sys.stderr,
        )
        return 2

    threads = _threads(spec)
    os.environ.update(thread_variables(threads))
    import torch

    torch.set_num_threads(threads)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop.handler)
    append_timestamp(
        out, "start", env.rank, host=socket.gethostname(), pid=os.getpid(), threads=threads
    )
    # One line each at the start and the end, so a rank's log (kubectl logs, trainbed logs,
    # logs/rank-<r>.log) says which rank of which trial it is, where, and how it ended.
    print(
        f"trainbed worker: rank {env.rank} of {env.world_size}, trial {spec.trial_id} of "
        f"{spec.campaign}, {threads} threads, on {socket.gethostname()}",
        flush=True,
    )
    from trainbed.worker.calibration import NoiseProbe, gather_records
    from trainbed.worker.trainer import Trainer

    # wall_time_s runs from process start (imports included), less the noise guard's
    # calibration before training: the guard must never change the responses it guards (the
    # calibration after training runs once the result's clock has stopped)
    started, source = process_start()
    if source != "proc":
        print("trainbed worker: /proc gives no process start; wall_time_s starts at import")
    calibrating = time.perf_counter()
    probe = NoiseProbe.start(env.rank, cpu_cores(spec.resources.cpu), _gpu(spec, env.local_rank))
    calibration_s = time.perf_counter() - calibrating
    trainer = Trainer(spec, env, out, should_stop=stop, started=started + calibration_s)
    try:
        result = trainer.run()
    except Exception as err:  # noqa: BLE001 - every failure becomes a recorded outcome
        traceback.print_exc()
        result = trainer.failed(err)
    code = {"succeeded": 0, "terminated": EXIT_TERMINATED}.get(result.status, 1)
    record = probe.finish(calibrate_after=code == 0 and not stop.requested)
    noise = gather_records(record, env.distributed and code == 0)
    result = result.model_copy(update={"noise": noise})
    append_timestamp(out, "stop", env.rank, status=result.status, exit_code=code)
    said = f": {result.reason}" if result.reason else ""
    print(f"trainbed worker: rank {env.rank} {result.status}{said} (exit {code})", flush=True)
    if env.is_main:
        write_result(out, result)
    if code == 0:
        from trainbed.worker.distributed import close_group

        close_group()
    sys.stdout.flush()
    return code
