"""The noise guard's verdicts: calibration against its limit group, contention, overlaps,
exclusion, and the covariate/block fits. Table-driven over hand-built records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.adjusted import adjusted_fit, block_columns
from trainbed.analysis.models.noise import NoisePolicy, TrialNoise, noise_frame, overlaps
from trainbed.contract.noise import Calibration, HostSample, RankNoise, over_interval


def rank(
    seconds: float,
    after: float | None = None,
    *,
    cpu_limit: float = 1.0,
    host_busy: float = 1.0,
    own_busy: float = 0.95,
    wait: float | None = 1.0,
    steal: float = 0.0,
    node: str | None = None,
    r: int = 0,
) -> RankNoise:
    def cal(value: float) -> Calibration:
        return Calibration(seconds=value, threads=1, cpu_limit=cpu_limit)

    return RankNoise(
        rank=r,
        host="h",
        node=node,
        calibration_before=cal(seconds),
        calibration_after=cal(seconds if after is None else after),
        host_busy_cores=host_busy,
        own_busy_cores=own_busy,
        cpu_wait_pct=wait,
        steal_pct=steal,
        iowait_pct=0.0,
    )


def frame_of(records: dict[str, TrialNoise], policy: NoisePolicy | None = None) -> pd.DataFrame:
    trials = pd.DataFrame({"trial_id": list(records), "status": ["succeeded"] * len(records)})
    return noise_frame(trials, records, policy or NoisePolicy()).set_index("trial_id")


QUIET = {
    f"q{i}": TrialNoise(ranks=[rank(0.15 + 0.005 * i)], concurrent_trials=[]) for i in range(4)
}

CASES = [
    # (name, the odd trial's record, the reason expected in its "why")
    ("slow calibration", TrialNoise(ranks=[rank(0.6)], concurrent_trials=[]), "calibration +"),
    ("fast calibration", TrialNoise(ranks=[rank(0.05)], concurrent_trials=[]), "calibration -"),
    ("drift", TrialNoise(ranks=[rank(0.15, 0.3)], concurrent_trials=[]), "changed"),
    ("other load", TrialNoise(ranks=[rank(0.16, host_busy=2.0)], concurrent_trials=[]), "other"),
    ("cpu wait", TrialNoise(ranks=[rank(0.16, wait=40.0)], concurrent_trials=[]), "waited"),
    ("steal", TrialNoise(ranks=[rank(0.16, steal=12.0)], concurrent_trials=[]), "steal"),
    ("concurrent", TrialNoise(ranks=[rank(0.16)], concurrent_trials=["q1"]), "beside 1"),
]


@pytest.mark.parametrize(("name", "odd", "why"), CASES, ids=[c[0] for c in CASES])
def test_the_odd_trial_is_flagged_and_says_why(name: str, odd: TrialNoise, why: str) -> None:
    frame = frame_of({**QUIET, "odd": odd})
    assert frame.loc["odd", "flagged"], frame.loc["odd"].to_dict()
    assert why in frame.loc["odd", "why"]
    assert not frame.drop(index="odd")["flagged"].any(), frame


def test_calibrations_compare_within_a_cpu_limit_only() -> None:
    """Half a CPU calibrates twice as slow by design: no flag for it."""
    records = {
        **QUIET,
        **{f"h{i}": TrialNoise(ranks=[rank(0.30 + 0.01 * i, cpu_limit=0.5)]) for i in range(4)},
    }
    frame = frame_of(records)
    assert not frame["flagged"].any(), frame
    assert frame.loc["h0", "calibration_ref_s"] == pytest.approx(0.315)
    assert frame.loc["q0", "calibration_ref_s"] == pytest.approx(0.1575)


def test_other_load_is_per_host_less_all_own_ranks() -> None:
    """Two ranks on one host that keep it busy between them are not contention."""
    both = TrialNoise(
        ranks=[rank(0.15, host_busy=2.0, own_busy=0.98), rank(0.15, host_busy=2.0, r=1)]
    )
    frame = frame_of({**QUIET, "two": both})
    assert frame.loc["two", "other_busy_cores"] == pytest.approx(2.0 - 0.98 - 0.95)
    assert not frame.loc["two", "flagged"]


def _with_repeats(before: list[float], after: list[float]) -> TrialNoise:
    def cal(times: list[float]) -> Calibration:
        return Calibration(seconds=float(np.median(times)), repeats=times, threads=1, cpu_limit=1)

    record = rank(0.15)
    record = record.model_copy(
        update={"calibration_before": cal(before), "calibration_after": cal(after)}
    )
    return TrialNoise(ranks=[record], concurrent_trials=[])


DRIFTS = [
    # (name, before repeats, after repeats, flagged for drift)
    # every repeat slower after: the machine changed under the trial
    ("all moved", [0.15, 0.15, 0.16, 0.15, 0.16], [0.21, 0.22, 0.21, 0.23, 0.21], True),
    # the quickstart's 500m pattern: repeats that straddle one more CFS period, either side
    ("quota jitter", [0.15, 0.15, 0.22, 0.22, 0.15], [0.22, 0.23, 0.15, 0.15, 0.22], False),
    # one slow repeat before only: the medians differ by 33%, the sets overlap
    ("overlap", [0.15, 0.15, 0.15, 0.21, 0.21], [0.20, 0.21, 0.20, 0.20, 0.14], False),
    # faster after counts too
    ("all faster", [0.21, 0.22, 0.21, 0.23, 0.21], [0.15, 0.15, 0.16, 0.15, 0.16], True),
]


@pytest.mark.parametrize(("name", "before", "after", "flagged"), DRIFTS, ids=[d[0] for d in DRIFTS])
def test_drift_flags_only_where_every_repeat_moved(
    name: str, before: list[float], after: list[float], flagged: bool
) -> None:
    row = frame_of({**QUIET, "odd": _with_repeats(before, after)}).loc["odd"]
    assert row["calibration_drift_pct"] > 20.0  # measured and shown either way
    assert ("changed" in row["why"]) is flagged, row.to_dict()


def test_threshold_is_the_policy() -> None:
    odd = TrialNoise(ranks=[rank(0.2)], concurrent_trials=[])  # +27% of the median
    assert frame_of({**QUIET, "odd": odd}).loc["odd", "flagged"]
    assert not frame_of({**QUIET, "odd": odd}, NoisePolicy(threshold=0.5)).loc["odd", "flagged"]


def test_no_records_flag_nothing() -> None:
    frame = frame_of({"a": TrialNoise(), "b": TrialNoise()})
    assert not frame["flagged"].any()
    assert frame["calibration_s"].isna().all()


def test_overlaps_from_timestamps_where_the_executor_recorded_none() -> None:
    def at(start: str, end: str, recorded: list[str] | None = None) -> TrialNoise:
        day = "2026-01-01T00:00:"
        return TrialNoise(
            started_at=day + start + "+00:00",
            finished_at=day + end + "+00:00",
            concurrent_trials=recorded,
        )

    found = overlaps({"a": at("00", "10"), "b": at("05", "15"), "c": at("20", "30", ["z"])})
    assert found == {"a": ["b"], "b": ["a"], "c": ["z"]}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        # 100 jiffies in all: 10 steal, 5 iowait, 40 idle -> busy 55% of 2 CPUs
        (
            dict(user=0, idle=0, iowait=0, steal=0),
            dict(user=45, idle=40, iowait=5, steal=10),
            dict(steal_pct=10.0, iowait_pct=5.0, host_busy_cores=1.1),
        ),
        (dict(user=0, idle=0), dict(user=0, idle=100), dict(steal_pct=0.0, host_busy_cores=0.0)),
        ({}, {}, dict(steal_pct=None, host_busy_cores=None)),
    ],
)
def test_over_interval(before: dict, after: dict, expected: dict) -> None:
    a = HostSample(time=0.0, cpu=before, cpus=2, process_cpu_s=1.0, run_delay_s=1.0)
    b = HostSample(time=10.0, cpu=after, cpus=2, process_cpu_s=6.0, run_delay_s=3.0)
    found = over_interval(a, b)
    for key, value in expected.items():
        assert found[key] == (None if value is None else pytest.approx(value)), key
    assert found["own_busy_cores"] == pytest.approx(0.5)
    assert found["cpu_wait_pct"] == pytest.approx(20.0)


def test_cpu_wait_leaves_out_the_quota_s_throttling() -> None:
    a = HostSample(time=0.0, run_delay_s=0.0, throttled_s=0.0)
    b = HostSample(time=10.0, run_delay_s=5.0, throttled_s=4.5)
    assert over_interval(a, b)["cpu_wait_pct"] == pytest.approx(5.0)


def _trials(rng: np.random.Generator, slope: float) -> tuple[pd.DataFrame, np.ndarray]:
    rows = []
    calibration = rng.normal(0, 0.2, 16)
    for i in range(16):
        a, b = (1 if i & 1 else -1), (1 if i & 2 else -1)
        y = 10 + 2 * a - 1 * b + slope * calibration[i] + rng.normal(0, 0.05)
        rows.append({"trial_id": f"t{i}", "a_coded": a, "b_coded": b, "y": y})
    frame = pd.DataFrame(rows)
    frame["status"] = "succeeded"
    return frame, calibration


FACTORS = [{"name": "a", "levels": ["lo", "hi"]}, {"name": "b", "levels": ["lo", "hi"]}]


def test_covariate_recovers_the_slope_and_the_effects() -> None:
    trials, calibration = _trials(np.random.default_rng(1), slope=5.0)
    fit = adjusted_fit(trials, FACTORS, "y", {"calibration": calibration}, "covariate")
    assert not isinstance(fit, str)
    effects = fit.effects.set_index("term")
    assert effects.loc["a", "q"] == pytest.approx(2.0, abs=0.1)
    assert effects.loc["b", "q"] == pytest.approx(-1.0, abs=0.1)
    assert fit.extra.set_index("term").loc["calibration", "q"] == pytest.approx(5.0, abs=0.3)
    # without the covariate the effects carry its noise: wider off the truth or not, the
    # adjusted interval is narrower
    width = (effects["ci95_high"] - effects["ci95_low"]).loc["a"]
    assert width < 0.2


@pytest.mark.parametrize("pattern", ["a", "a:b"])
def test_block_confounded_with_a_term_is_refused(pattern: str) -> None:
    trials, _ = _trials(np.random.default_rng(2), slope=0.0)
    sign = trials["a_coded"] * (trials["b_coded"] if pattern == "a:b" else 1)
    nodes = sign.map({-1: "n1", 1: "n2"})
    found = adjusted_fit(trials, FACTORS, "y", block_columns(nodes), "block")
    assert isinstance(found, str) and "confounded" in found


def test_block_separates_a_slow_node() -> None:
    trials, _ = _trials(np.random.default_rng(3), slope=0.0)
    nodes = pd.Series(["n1"] * 8 + ["n2"] * 8)  # replicates 1-2 on n1, 3-4 on n2
    trials["y"] += np.where(nodes == "n2", 3.0, 0.0)
    columns = block_columns(nodes)
    assert list(columns) == ["node[n1]"]
    fit = adjusted_fit(trials, FACTORS, "y", columns, "block")
    assert not isinstance(fit, str)
    assert fit.extra.set_index("term").loc["node[n1]", "q"] == pytest.approx(-1.5, abs=0.1)
    assert fit.effects.set_index("term").loc["a", "q"] == pytest.approx(2.0, abs=0.1)
