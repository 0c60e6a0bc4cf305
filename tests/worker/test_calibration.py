"""The worker's half of the noise guard: the calibration, the host readers on real and on
hand-written files, and a probe around a stretch of work in this process."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from trainbed.contract.env import NODE_NAME
from trainbed.worker.calibration import (
    REPEATS,
    NoiseProbe,
    calibrate,
    host_sample,
    read_proc_stat,
    read_run_delay,
    read_throttled,
)


def test_calibrate_times_the_fixed_work() -> None:
    found = calibrate(loops=8)
    assert len(found.repeats) == REPEATS
    assert found.seconds == sorted(found.repeats)[REPEATS // 2]
    assert found.threads is not None and found.threads >= 1
    assert found.work == "8 x matmul 256x256 float32"


def test_more_work_takes_longer() -> None:
    assert calibrate(loops=40).seconds > calibrate(loops=4).seconds


def test_proc_stat(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  10 1 5 100 3 0 2 7 0 0\ncpu0 5 0 2 50 1 0 1 3 0 0\ncpu1 5 1 3 50 2 0 1 4 0 0\n"
        "intr 1 2 3\nctxt 42\n"
    )
    counters, cpus = read_proc_stat(stat)
    assert counters == {
        "user": 10,
        "nice": 1,
        "system": 5,
        "idle": 100,
        "iowait": 3,
        "irq": 0,
        "softirq": 2,
        "steal": 7,
    }
    assert cpus == 2
    assert read_proc_stat(tmp_path / "missing") == ({}, None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("nr_periods 10\nnr_throttled 2\nthrottled_time 1500000000\n", 1.5),  # v1, ns
        ("usage_usec 9\nnr_throttled 2\nthrottled_usec 250000\n", 0.25),  # v2, us
        ("usage_usec 9\n", None),
    ],
)
def test_throttled(tmp_path: Path, text: str, seconds: float | None) -> None:
    path = tmp_path / "cpu.stat"
    path.write_text(text)
    assert read_throttled(path) == seconds
    assert read_throttled(None) is None


def test_run_delay(tmp_path: Path) -> None:
    path = tmp_path / "schedstat"
    path.write_text("123 4500000000 7\n")
    assert read_run_delay(path) == 4.5
    assert read_run_delay(tmp_path / "missing") is None


def test_a_real_host_sample() -> None:
    sample = host_sample()
    assert len(sample.loadavg) == 3 and sample.cpus and sample.cpus >= 1
    assert sample.cpu["idle"] > 0 and sample.process_cpu_s is not None
    assert sample.run_delay_s is not None


def test_probe_around_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NODE_NAME, "node-7")
    probe = NoiseProbe.start(rank=1, cpu_limit=0.5)
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    record = probe.finish()
    assert record.rank == 1 and record.node == "node-7" and record.host == os.uname().nodename
    for calibration in (record.calibration_before, record.calibration_after):
        assert calibration is not None and calibration.cpu_limit == 0.5
    # The calibration's matmul may use every core, so the bound is the machine's core count.
    cores = os.cpu_count() or 1
    assert record.own_busy_cores is not None and 0.2 < record.own_busy_cores <= cores + 0.25
    assert record.host_busy_cores is not None and record.cpu_wait_pct is not None
    assert record.note == ""


def test_a_failed_trial_skips_the_second_calibration() -> None:
    probe = NoiseProbe(rank=0, cpu_limit=1.0, before=host_sample())
    record = probe.finish(calibrate_after=False)
    assert record.calibration_after is None and "did not succeed" in record.note
