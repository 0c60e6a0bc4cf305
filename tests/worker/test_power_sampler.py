"""The GPU power sampler with a fake reading function, its pure summaries, and the energy
ledger's spans (training apart from the whole trial) with fake meters."""

from __future__ import annotations

import time

import pytest

from trainbed.contract.records import PowerSummary
from trainbed.worker.energy import NoMeter
from trainbed.worker.energy_ledger import EnergyLedger, pack, sample_hz, unpack
from trainbed.worker.power_sampler import PowerSample, PowerSampler, combine_power, summarise_power


@pytest.mark.timeout(10)
def test_summary_of_known_samples() -> None:
    samples = [
        PowerSample(100.0, 50.0, 1 << 30, 0x1, 1000),
        PowerSample(300.0, 100.0, 3 << 30, 0x4, 1980),
        PowerSample(None, None, None, None, None),  # a failed read is no zero
        PowerSample(200.0, 90.0, 2 << 30, 0x4 | 0x40, 1500),
    ]
    summary = summarise_power(samples, active_s=2.0)
    assert summary is not None
    assert summary.samples == 4 and summary.sample_hz == 2.0
    assert summary.mean_w == pytest.approx(200.0)
    assert summary.peak_w == 300.0
    assert summary.utilization_mean_pct == pytest.approx(80.0)
    assert summary.memory_used_max_bytes == 3 << 30
    assert summary.throttle_reasons == ["gpu_idle", "sw_power_cap", "hw_thermal_slowdown"]
    assert summary.model_extra["sm_clock_max_mhz"] == 1980
    assert summarise_power([], 1.0) is None


@pytest.mark.timeout(10)
def test_two_gpus_of_a_rank_count_their_rate_each() -> None:
    samples = [PowerSample(100.0)] * 20  # 10 reads of 2 GPUs over 5 s
    summary = summarise_power(samples, active_s=5.0, gpus=2)
    assert summary is not None and summary.sample_hz == 2.0


@pytest.mark.timeout(10)
def test_combining_ranks_weights_by_samples() -> None:
    a = PowerSummary(sample_hz=10, samples=30, mean_w=100, peak_w=150, throttle_reasons=["x"])
    b = PowerSummary(
        sample_hz=9,
        samples=10,
        mean_w=300,
        peak_w=320,
        memory_used_max_bytes=5,
        throttle_reasons=["y"],
    )
    both = combine_power([a, b, None])
    assert both is not None
    assert both.samples == 40 and both.sample_hz == 9
    assert both.mean_w == pytest.approx(150.0)
    assert both.peak_w == 320 and both.memory_used_max_bytes == 5
    assert both.throttle_reasons == ["x", "y"]
    assert combine_power([None, None]) is None


@pytest.mark.timeout(20)
def test_sampler_reads_only_while_training_at_its_rate() -> None:
    reads: list[float] = []

    def read() -> list[PowerSample]:
        reads.append(time.perf_counter())
        return [PowerSample(power_w=250.0)]

    sampler = PowerSampler(read, hz=20).start()
    time.sleep(0.3)
    assert reads == []  # paused until training begins
    sampler.resume()
    time.sleep(1.0)
    sampler.pause()
    during = len(reads)
    time.sleep(0.3)
    sampler.stop()
    assert 10 <= during <= 21  # 20 Hz for 1 s, less a late start on a busy machine
    assert len(reads) <= during + 1
    summary = sampler.summary()
    assert summary is not None and summary.mean_w == 250.0
    assert summary.sample_hz >= 10 and sampler.active_s == pytest.approx(1.0, abs=0.1)


@pytest.mark.timeout(20)
def test_a_failing_reader_gives_no_samples_and_says_why() -> None:
    def read() -> list[PowerSample]:
        raise OSError("NVML went away")

    sampler = PowerSampler(read, hz=50).start()
    sampler.resume()
    time.sleep(0.2)
    sampler.stop()
    assert sampler.samples == [] and sampler.summary() is None
    assert sampler.errors and "OSError: NVML went away" in sampler.errors[0]


class Counter:
    """A meter whose reading the test sets."""

    def __init__(self, source: str = "fake") -> None:
        self.value: float | None = 0.0
        self.source = source

    def joules(self) -> float | None:
        return self.value


@pytest.mark.timeout(10)
def test_ledger_keeps_training_apart_from_the_trial() -> None:
    gpu, cpu = Counter("nvml: GPU 0"), Counter("rapl: intel-rapl:0")
    ledger = EnergyLedger({"gpu": gpu, "cpu": cpu}, "gpu")
    gpu.value, cpu.value = 1000.0, 50.0  # start-up before the account opens
    ledger.begin()
    for epoch_gpu, idle_gpu in ((300.0, 40.0), (250.0, 40.0)):
        ledger.train_begin()
        gpu.value += epoch_gpu
        cpu.value += 10.0
        ledger.train_end()
        gpu.value += idle_gpu / 2  # validation
        ledger.test_begin()
        gpu.value += idle_gpu / 2  # test pass
        ledger.test_end()
    assert ledger.so_far() == pytest.approx(300 + 250 + 20 + 20)
    totals = ledger.totals()
    assert totals == {"energy": 630.0, "train": 550.0, "gpu": 630.0, "cpu": 20.0}
    assert ledger.sources() == {"gpu": "nvml: GPU 0", "cpu": "rapl: intel-rapl:0"}


@pytest.mark.timeout(10)
def test_ledger_without_a_meter_is_null_never_zero() -> None:
    ledger = EnergyLedger({"gpu": Counter(), "cpu": NoMeter("no RAPL")}, "gpu")
    ledger.begin()
    ledger.train_begin()
    ledger.train_end()
    totals = ledger.totals()
    assert totals["cpu"] is None and totals["gpu"] == 0.0 and totals["train"] == 0.0
    assert ledger.sources()["cpu"] == "none: no RAPL"
    unmeasured = EnergyLedger.unmeasured("not started")
    unmeasured.begin()
    assert unmeasured.totals() == {"energy": None, "train": None, "gpu": None, "cpu": None}


@pytest.mark.timeout(10)
def test_pack_and_unpack_carry_missing_values_through_a_sum() -> None:
    rank0, rank1 = pack([10.0, None, 3.0]), pack([5.0, 2.0, 0.0])
    summed = [a + b for a, b in zip(rank0, rank1, strict=True)]
    assert unpack(summed) == [15.0, None, 3.0]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("environ", "hz"),
    [
        ({}, 10.0),
        ({"TRAINBED_POWER_SAMPLE_HZ": "0"}, 0.0),
        ({"TRAINBED_POWER_SAMPLE_HZ": "2.5"}, 2.5),
        ({"TRAINBED_POWER_SAMPLE_HZ": "x"}, 10.0),
    ],
)
def test_sample_hz(environ: dict[str, str], hz: float) -> None:
    assert sample_hz(environ) == hz
