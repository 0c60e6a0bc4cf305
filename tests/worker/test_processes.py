"""Real worker processes: 2-rank gloo outputs, train-to-accuracy, SIGTERM, a killed peer."""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from trainbed.contract.records import ITERATION_COLUMNS, TB_TAGS, read_result


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_spec(directory: Path, seed: int = 3, cpu: str = "1", **workload: Any) -> Path:
    spec = {
        "campaign": "worker-tests",
        "trial_id": "t-0001",
        "seed": seed,
        "workload": {
            "dataset": "digits",
            "model": "MLP",
            "epochs": 2,
            "batch_size": 64,
            **workload,
        },
        "resources": {"cpu": cpu, "memory": "1Gi"},
        "levels": {"batch_size": workload.get("batch_size", 64)},
    }
    path = directory / "TRIAL.json"
    path.write_text(json.dumps(spec))
    return path


def start_ranks(
    spec: Path, out: Path, world: int, env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    port = free_port()
    out.mkdir(parents=True, exist_ok=True)
    procs = []
    for rank in range(world):
        rank_env = {
            **os.environ,
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "TRAINBED_RDZV_TIMEOUT": "60",
            **(env or {}),
        }
        log = open(out / f"test-rank-{rank}.log", "wb")  # noqa: SIM115 - closed by the child
        try:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "trainbed.worker"]
                    + ["--spec", str(spec), "--out", str(out)],
                    env=rank_env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        finally:
            log.close()
    return procs


def wait_all(procs: list[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    codes = []
    try:
        for proc in procs:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return codes


def logs(out: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(out.glob("test-*.log")))


def timestamps(out: Path) -> list[dict[str, Any]]:
    path = out / "timestamps.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_starts(out: Path, ranks: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(1 for t in timestamps(out) if t["event"] == "start") >= ranks:
            return
        time.sleep(0.1)
    raise AssertionError(f"no start line from {ranks} rank(s) in {timeout} s\n{logs(out)}")


def wait_for_training(out: Path, timeout: float) -> None:
    """Rank 0 opens its TensorBoard writer after the model (and DDP) is built, just before the
    first epoch: its events file is the outside sign that training is underway."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any((out / "tb").glob("events.out.tfevents.*")):
            return
        time.sleep(0.1)
    raise AssertionError(f"training did not start in {timeout} s\n{logs(out)}")


def run_trial(tmp_path: Path, world: int, timeout: float = 120, **workload: Any) -> Path:
    out = tmp_path / "out"
    spec = write_spec(tmp_path, parallelism=world, **workload)
    codes = wait_all(start_ranks(spec, out, world), timeout)
    assert codes == [0] * world, logs(out)
    return out


# --- 2 ranks, gloo, digits: every output ------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_rank_outputs(tmp_path: Path) -> None:
    out = run_trial(tmp_path, world=2, epochs=2)

    # result.json
    result = read_result(out)
    assert result is not None
    assert result.status == "succeeded" and result.reason == ""
    assert result.campaign == "worker-tests" and result.trial_id == "t-0001"
    assert result.epochs_run == 2 and [e.epoch for e in result.epochs] == [1, 2]
    assert result.world_size == 2 and result.device == "cpu"
    for value in (result.final_accuracy, result.best_accuracy, result.test_accuracy):
        assert value is not None and 0.0 <= value <= 1.0
    assert result.final_accuracy == result.epochs[-1].val_accuracy
    assert result.best_accuracy == max(e.val_accuracy for e in result.epochs)
    assert result.test_accuracy == result.epochs[-1].test_accuracy
    assert result.train_time_s == pytest.approx(sum(e.train_time_s for e in result.epochs))
    assert result.validation_time_s == pytest.approx(sum(e.val_time_s for e in result.epochs))
    assert result.wall_time_s is not None and result.wall_time_s >= result.train_time_s
    assert result.samples_per_s is not None and result.samples_per_s > 0
    assert result.first_iteration_s is not None and result.first_iteration_s > 0
    assert result.time_to_accuracy_s is None and result.model_extra["target_met_epoch"] is None
    assert result.model_extra["threads"] == 1
    assert result.seeds["trial"] == 3 and result.seeds["sampler"] == 3
    assert result.seeds["dataloader"] == 3  # seed + rank, rank 0 writes the result
    assert {"torch", "numpy", "python", "validation_split"} <= set(result.seeds)
    assert result.enforcement == {"mode": "none"}
    assert set(result.versions) == {"trainbed", "torch", "python"}
    # what it ran on, read back from this machine (a CPU trial: no GPU model)
    assert result.host is not None and result.host.kernel == platform.release()
    assert result.host.cpu_count == os.cpu_count() and result.host.gpu_model is None
    assert result.started_at and result.finished_at and result.started_at < result.finished_at
    for epoch in result.epochs:
        assert 0.0 <= epoch.train_accuracy <= 1.0 and 0.0 <= epoch.val_accuracy <= 1.0
        assert 0.0 <= epoch.test_accuracy <= 1.0
        assert epoch.train_time_s > 0 and epoch.val_time_s > 0
        assert epoch.compute_s <= epoch.train_time_s and epoch.data_wait_s <= epoch.train_time_s

    # timestamps.jsonl: a start and a stop per rank
    stamps = timestamps(out)
    for rank in (0, 1):
        events = [t for t in stamps if t["rank"] == rank]
        assert [t["event"] for t in events] == ["start", "stop"], stamps
        assert events[0]["threads"] == 1 and events[0]["pid"] > 0
        assert events[1]["status"] == "succeeded" and events[1]["exit_code"] == 0
        assert events[0]["time"] <= events[1]["time"]

    # iterations: the documented header, rows of both ranks
    steps_per_rank = None
    for rank in (0, 1):
        with open(out / "iterations" / f"rank-{rank}.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == ITERATION_COLUMNS
        body = [dict(zip(ITERATION_COLUMNS, row, strict=True)) for row in rows[1:]]
        assert body and all(int(r["rank"]) == rank for r in body)
        assert {int(r["epoch"]) for r in body} == {1, 2}
        assert [int(r["global_step"]) for r in body] == list(range(1, len(body) + 1))
        assert all(float(r["step_s"]) >= float(r["compute_s"]) >= 0 for r in body)
        assert all(float(r["data_wait_s"]) >= 0 for r in body)
        steps_per_rank = steps_per_rank or len(body)
        assert len(body) == steps_per_rank  # the ranks take the same number of steps

    # shards: disjoint, equal counts, covering the training split but world_size - 1 samples
    shards = {r: json.loads((out / "shards" / f"rank-{r}.json").read_text()) for r in (0, 1)}
    for r in (0, 1):
        assert [s["epoch"] for s in shards[r]] == [1, 2]
        assert "indices" in shards[r][0] and "indices" not in shards[r][1]
        assert len(shards[r][0]["indices"]) == shards[r][0]["count"]
        assert shards[r][0]["sha256"] != shards[r][1]["sha256"]  # set_epoch reshuffles
    first = [set(shards[r][0]["indices"]) for r in (0, 1)]
    assert not first[0] & first[1]
    assert shards[0][0]["count"] == shards[1][0]["count"]
    assert shards[0][1]["count"] == shards[1][1]["count"]
    # digits: 1797 samples, 20 % test, 10 % of the rest held out for validation
    train_split = 1797 - math.ceil(1797 * 0.2) - round((1797 - math.ceil(1797 * 0.2)) * 0.1)
    union = first[0] | first[1]
    assert union <= set(range(train_split))
    assert train_split - len(union) <= 1
    # each rank's samples per epoch match its shard
    with open(out / "iterations" / "rank-1.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sum(int(r["samples"]) for r in rows if r["epoch"] == "1") == shards[1][0]["count"]

    # TensorBoard: every documented tag, one value per epoch at steps 1 and 2, plus hparams
    scalars, hparams = read_tensorboard(out / "tb")
    assert set(TB_TAGS) <= set(scalars), sorted(scalars)
    for tag in TB_TAGS:
        assert [step for step, _ in scalars[tag]] == [1, 2], tag
    assert [v for _, v in scalars["val/accuracy"]] == pytest.approx(
        [e.val_accuracy for e in result.epochs], rel=1e-6
    )
    assert [v for _, v in scalars["accuracy per epoch"]] == pytest.approx(
        [e.val_accuracy for e in result.epochs], rel=1e-6
    )
    assert [v for _, v in scalars["time/epoch_train_s"]] == pytest.approx(
        [e.train_time_s for e in result.epochs], rel=1e-5
    )
    assert hparams["model"] == "MLP" and hparams["parallelism"] == 2
    assert hparams["batch_size"] == 64 and hparams["trial_id"] == "t-0001"


def read_tensorboard(directory: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, Any]]:
    """Scalars by tag as sorted (step, value) pairs, and the trial's hparams, via tensorboard's
    EventAccumulator (tbparse trips a pandas deprecation warning, an error under this suite)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {
        tag: sorted((e.step, e.value) for e in acc.Scalars(tag)) for tag in acc.Tags()["scalars"]
    }
    hparams: dict[str, Any] = {}
    for content in acc.PluginTagToContent("hparams").values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            for name, value in data.session_start_info.hparams.items():
                kind = value.WhichOneof("kind")
                hparams[name] = getattr(value, kind)
    return scalars, hparams


# --- train-to-accuracy, real runs ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_train_to_accuracy_stops_early(tmp_path: Path) -> None:
    out = run_trial(
        tmp_path,
        world=1,
        epochs=1,
        batch_size=32,
        lr=0.05,
        target_accuracy={"threshold": 0.5, "patience": 1, "max_epochs": 5},
    )
    result = read_result(out)
    assert result is not None and result.status == "succeeded"
    assert 1 <= result.epochs_run <= 2
    met = result.model_extra["target_met_epoch"]
    assert met == result.epochs_run
    assert result.epochs[met - 1].val_accuracy >= 0.5
    assert all(e.val_accuracy < 0.5 for e in result.epochs[: met - 1])
    tta = result.time_to_accuracy_s
    assert tta is not None and result.train_time_s is not None
    # from the first epoch's start to the end of the validation that met the target
    assert tta >= result.train_time_s
    assert tta <= result.train_time_s + result.validation_time_s + 5.0


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_train_to_accuracy_unreachable_runs_all_epochs(tmp_path: Path) -> None:
    out = run_trial(
        tmp_path,
        world=1,
        epochs=1,
        lr=0.001,
        target_accuracy={"threshold": 1.0, "patience": 1, "max_epochs": 3},
    )
    result = read_result(out)
    assert result is not None and result.status == "succeeded"
    assert result.epochs_run == 3
    assert result.time_to_accuracy_s is None and result.energy_to_accuracy_j is None
    assert result.model_extra["target_met_epoch"] is None


# --- SIGTERM and a dead peer ---------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigterm_gives_terminated(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = write_spec(tmp_path, parallelism=1, epochs=200, batch_size=8)
    (proc,) = start_ranks(spec, out, 1)
    try:
        wait_for_starts(out, 1, timeout=60)
        wait_for_training(out, timeout=60)
        time.sleep(3.0)
        assert proc.poll() is None, logs(out)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        code = proc.wait(timeout=20)
        assert time.monotonic() - sent < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 143, logs(out)
    result = read_result(out)
    assert result is not None and result.status == "terminated"
    assert "SIGTERM" in result.reason
    assert result.epochs_run < 200
    stop = [t for t in timestamps(out) if t["event"] == "stop"]
    assert stop and stop[0]["status"] == "terminated" and stop[0]["exit_code"] == 143
    # the iterations done so far are still written, and there were some
    lines = (out / "iterations" / "rank-0.csv").read_text().splitlines()
    assert tuple(lines[0].split(",")) == ITERATION_COLUMNS and len(lines) > 1


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_killed_peer_fails_rank0(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = write_spec(tmp_path, parallelism=2, epochs=200, batch_size=8)
    procs = start_ranks(spec, out, 2, env={"TRAINBED_COLLECTIVE_TIMEOUT": "20"})
    try:
        wait_for_starts(out, 2, timeout=60)
        wait_for_training(out, timeout=60)
        time.sleep(2.0)
        assert all(p.poll() is None for p in procs), logs(out)
        procs[1].kill()
        procs[1].wait()
        killed = time.monotonic()
        code = procs[0].wait(timeout=60)
        elapsed = time.monotonic() - killed
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 1, logs(out)
    assert elapsed < 50, elapsed
    result = read_result(out)
    assert result is not None and result.status == "failed", logs(out)
    assert result.reason
    assert result.world_size == 2
    stop = [t for t in timestamps(out) if t["event"] == "stop" and t["rank"] == 0]
    assert stop and stop[0]["status"] == "failed" and stop[0]["exit_code"] == 1
