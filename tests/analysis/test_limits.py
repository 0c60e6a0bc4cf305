"""Were the resource levels enforced? The evidence per trial (cgroup read back, fallback
affinity, watchdog, tc, GPUs) on the records the executors write, the flag over a factor's
levels, the effect rows it marks, and the setups listed once."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from trainbed.analysis.models.limits import (
    NO_LIMIT,
    campaign_limits,
    evidence,
    flag,
    flagged_factors,
    level_limits,
    mark_effects,
    term_flag,
    term_labels,
)
from trainbed.analysis.reporting.limits_section import (
    allowed_unenforced,
    banner,
    limits_json,
    section,
)
from trainbed.analysis.reporting.setup_section import setups
from trainbed.contract.host import HostInfo
from trainbed.contract.records import RankGpu, Result


def v1(cores: float, memory: int = 1610612736) -> dict[str, Any]:
    """What the local cgroup-v1 executor and the worker's read back record (a real record)."""
    quota = round(cores * 100_000)
    return {
        "mode": "cgroup-v1",
        "cpu_cores": cores,
        "cpu_enforced_by": f"cpu.cfs_quota_us={quota}/cpu.cfs_period_us=100000",
        "memory_bytes": memory,
        "memory_enforced_by": f"memory.limit_in_bytes={memory}",
        "threads": 1,
        "read_back": {
            "cpu_quota_us": quota,
            "cpu_period_us": 100000,
            "cpu_limit": cores,
            "memory_limit_bytes": memory,
            "cgroup_version": 1,
        },
    }


def fallback(cores: float, affinity: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "mode": "fallback",
        "cpu_cores": cores,
        "memory_bytes": 1610612736,
        "threads": 1,
        "affinity": affinity,
        "memory_enforced_by": "rss-watchdog",
        "cpu_enforced_by": "affinity+threads",
        **extra,
    }


def pod(cpu: str, read_cpu: float | None) -> dict[str, Any]:
    back = None if read_cpu is None else {"cpu_limit": read_cpu, "cgroup_version": 2}
    return {"mode": "kubernetes", "cpu": cpu, "memory": "2Gi", "read_back": back}


def netns(rate: int | None, delay: float | None) -> dict[str, Any]:
    return {
        "mode": "fallback",
        "network": {
            "mode": "netns",
            "bandwidth_bps": rate,
            "latency_s": delay,
            "bandwidth_enforced_by": "tbf" if rate else None,
            "latency_enforced_by": "netem" if delay else None,
            "read_back": "tc -j qdisc show",
        },
    }


def record(enforcement: dict[str, Any], **fields: Any) -> Result:
    return Result(status="succeeded", enforcement=enforcement, **fields)


CPU, MEM = "resources.cpu", "resources.memory"
BW, LAT, GPU = "resources.bandwidth", "resources.latency", "resources.gpu"


@pytest.mark.parametrize(
    ("target", "level", "enforcement", "fields", "expected"),
    [
        # cgroup v1: the read back is the quota asked for
        (CPU, "500m", v1(0.5), {}, (0.5, 0.5, True)),
        (MEM, "1536Mi", v1(0.5), {}, (1610612736.0, 1610612736.0, True)),
        # a read back that differs from the request is not enforced as written
        (CPU, "500m", v1(1.0), {}, (1.0, 1.0, False)),
        # the fallback: 500m pinned to one core could use a whole core
        (CPU, "500m", fallback(0.5, [0]), {}, (None, 1.0, False)),
        (CPU, "1", fallback(1.0, [1]), {}, (None, 1.0, True)),
        (CPU, "2", fallback(2.0, [0, 1]), {}, (None, 2.0, True)),
        (MEM, "1536Mi", fallback(0.5, [0]), {}, (None, None, False)),
        # the executor's own verdict (the limits work adds it) decides where nothing is read
        # (a duty cycle holding 500m on one core: it could use what was asked)
        (CPU, "500m", fallback(0.5, [0], cpu_enforced=True), {}, (None, 0.5, True)),
        (MEM, "1Gi", fallback(1, [0], memory_enforced=False), {}, (None, None, False)),
        # a pod: the kubelet's limits read back from the container's cgroup
        (CPU, "500m", pod("500m", 0.5), {}, (0.5, 0.5, True)),
        (CPU, "500m", pod("500m", None), {}, (None, None, None)),  # unknown, never guessed
        # no executor at all
        (CPU, "1", {"mode": "none"}, {}, (None, None, False)),
        # the network: tc's read back; "no limit" reads back as no tbf
        (BW, "20M", netns(20_000_000, None), {}, (20e6, 20e6, True)),
        (BW, None, netns(None, None), {}, (NO_LIMIT, NO_LIMIT, True)),
        (BW, "20M", netns(None, None), {}, (NO_LIMIT, NO_LIMIT, False)),
        (LAT, "5ms", netns(None, 0.005), {}, (0.005, 0.005, True)),
        (LAT, "0ms", netns(None, None), {}, (NO_LIMIT, NO_LIMIT, True)),
        (BW, "20M", {"mode": "fallback"}, {}, (None, None, False)),  # nothing shaped it
        (
            BW,
            "20M",
            {"mode": "kubernetes", "network": {"mode": "pod-annotations", "read_back": None}},
            {},
            (None, None, None),
        ),
        # GPUs: what the executor assigned to rank 0; a GPU trial that ran on the CPU
        (
            GPU,
            1,
            {"mode": "cgroup-v2"},
            {"gpus": [RankGpu(rank=0, index=0, uuid="GPU-a", model="H200")], "device": "cuda:0"},
            (1.0, 1.0, True),
        ),
        (GPU, 1, {"mode": "fallback"}, {"device": "cpu"}, (0.0, 0.0, False)),
    ],
)
def test_evidence(
    target: str,
    level: Any,
    enforcement: dict[str, Any],
    fields: dict[str, Any],
    expected: tuple[float | None, float | None, bool | None],
) -> None:
    found = evidence(target, level, record(enforcement, **fields))
    assert (found.read_back, found.effective, found.enforced) == expected


def test_gpu_power_limit_uses_nvml_read_back() -> None:
    tuned = {"gpu_tuned_by": "nvml", "gpu_power_limit_w": 300.0, "gpu_power_limit_confirmed": True}
    found = evidence("resources.gpu_power_limit", 300, record(tuned))
    assert (found.enforced_by, found.read_back, found.enforced) == ("nvml", 300.0, True)
    refused = {**tuned, "gpu_power_limit_w": 400.0, "gpu_power_limit_confirmed": False}
    assert evidence("resources.gpu_power_limit", 300, record(refused)).enforced is False
    clock = {"gpu_tuned_by": "nvml", "gpu_clock_mhz": 1200}  # idle below the lock: not judged
    assert evidence("resources.gpu_clock", 1500, record(clock)).enforced is None


def _levels(target: str, per_level: dict[str, list[dict[str, Any]]]):
    records, out = {}, []
    for level, enforcements in per_level.items():
        ids = [f"{level}-{i}" for i in range(len(enforcements))]
        records.update({t: record(e) for t, e in zip(ids, enforcements, strict=True)})
        out.append(level_limits(target, level, ids, records))
    return out


@pytest.mark.parametrize(
    ("target", "per_level", "flagged"),
    [
        (CPU, {"500m": [v1(0.5)] * 2, "1": [v1(1.0)] * 2}, False),
        # the fallback: both levels could use one core, and 500m is not enforced
        (CPU, {"500m": [fallback(0.5, [0])] * 2, "1": [fallback(1, [0])] * 2}, True),
        # integer levels pinned to different core counts are distinguishable
        (CPU, {"1": [fallback(1, [0])], "2": [fallback(2, [0, 1])]}, False),
        # the host has fewer cores than asked: 2 and 4 both ran on 2
        (CPU, {"2": [fallback(2, [0, 1])], "4": [fallback(4, [0, 1])]}, True),
        # one trial of a level ran without enforcement (a resumed campaign): flagged
        (CPU, {"500m": [v1(0.5), fallback(0.5, [0])], "1": [v1(1.0)]}, True),
        (MEM, {"1Gi": [fallback(1, [0])], "2Gi": [fallback(1, [0])]}, True),
        # the executor held 500m another way (a duty cycle) and says so: not flagged
        (
            CPU,
            {"500m": [fallback(0.5, [0], cpu_enforced=True)], "1": [fallback(1, [0])]},
            False,
        ),
        # unknown (nothing read back) is shown as such, never flagged on a guess
        (CPU, {"500m": [pod("500m", None)], "1": [pod("1", None)]}, False),
        (BW, {"20M": [netns(20_000_000, None)], "null": [netns(None, None)]}, False),
    ],
)
def test_flag(target: str, per_level: dict[str, list[dict[str, Any]]], flagged: bool) -> None:
    assert bool(flag(target, _levels(target, per_level))) is flagged


def test_flag_says_why() -> None:
    per_level = {"500m": [fallback(0.5, [0])], "1": [fallback(1, [1])]}
    why = flag(CPU, _levels(CPU, per_level))
    assert why[0].startswith("level 500m: not enforced as written (affinity+threads gives 1 core")
    assert why[1] == "levels 500m and 1 could both use 1 core"


QUICKSTART_FACTORS = [
    {"name": "batch_size", "target": "workload.batch_size", "levels": [16, 64]},
    {"name": "cpu", "target": "resources.cpu", "levels": ["500m", "1"]},
]


def _trials(levels: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(len(levels))],
            "batch_size": [16, 64] * (len(levels) // 2),
            "cpu": levels,
        }
    )


def test_campaign_limits_over_a_trials_frame() -> None:
    trials = _trials(["500m", "1", "500m", "1"])
    records = {
        t: record(fallback(0.5 if lv == "500m" else 1.0, [0]))
        for t, lv in zip(trials["trial_id"], trials["cpu"], strict=True)
    }
    del records["t3"]  # a trial that left no result
    fixed = {"resources.cpu": "1", "resources.memory": "1536Mi"}
    limits = campaign_limits(QUICKSTART_FACTORS, trials, records, fixed)
    assert [(f.factor, f.target) for f in limits] == [("cpu", CPU), (None, MEM)]
    cpu = limits[0]
    assert [lv.level for lv in cpu.levels] == ["500m", "1"]
    assert [lv.trials for lv in cpu.levels] == [("t0", "t2"), ("t1", "t3")]
    assert cpu.flagged and flagged_factors(limits) == {"cpu"}
    assert limits[1].levels[0].enforced is False and not limits[1].flagged
    text = section(limits, records)
    assert "| cpu | `resources.cpu` | 500m | 2 | 0.5 cores | fallback |" in text
    assert "Not enforced: cpu" in banner(limits)
    data = limits_json(limits)
    assert data["flagged"] == ["cpu"]
    level = data["factors"][0]["levels"][0]
    assert level["requested"] == 0.5 and level["effective"] == [1.0] and level["read_back"] == []
    assert level["enforced"] is False and data["fixed"][0]["target"] == MEM


def test_enforced_factor_is_not_flagged_and_no_banner() -> None:
    trials = _trials(["500m", "1"])
    records = {"t0": record(v1(0.5)), "t1": record(v1(1.0))}
    limits = campaign_limits(QUICKSTART_FACTORS, trials, records)
    assert not limits[0].flagged and banner(limits) == ""
    assert math.isclose(limits[0].levels[1].read_back[0], 1.0)


@pytest.mark.parametrize(
    ("term", "expected"),
    [("cpu", "not enforced"), ("batch_size:cpu", "not enforced"), ("batch_size", ""), ("mean", "")],
)
def test_term_flag(term: str, expected: str) -> None:
    assert term_flag(term, {"cpu"}) == expected


def test_mark_effects_and_labels() -> None:
    effects = pd.DataFrame({"term": ["mean", "batch_size", "cpu", "batch_size:cpu"]})
    assert mark_effects(effects, set()) is effects  # nothing flagged: the frame is unchanged
    marked = mark_effects(effects, {"cpu"})
    assert list(marked["limits"]) == ["", "", "not enforced", "not enforced"]
    assert term_labels(marked)[2:] == ["cpu (not enforced)", "batch_size:cpu (not enforced)"]
    assert term_labels(effects) == list(effects["term"])


def test_setups_list_each_host_once() -> None:
    host = HostInfo(kernel="6.8.0", cpu_model="AMD EPYC", cpu_count=16, cgroup_mode="v2")
    versions = {"trainbed": "0.1.0", "torch": "2.5.0", "python": "3.11.7"}
    pinned = host.model_copy(update={"cpu_affinity": 1})
    other = host.model_copy(update={"kernel": "6.9.0"})
    records = {
        "a": Result(status="succeeded", host=host, versions=versions),
        "b": Result(status="succeeded", host=pinned, versions=versions),  # same machine
        "c": Result(status="succeeded", host=other, versions=versions),
        "d": Result(status="failed", versions=versions),  # no host: its own, "not recorded"
    }
    found = setups(records)
    assert [s.trials for s in found] == [("a", "b"), ("c",), ("d",)]
    assert found[0].affinities == (1,) and found[2].host is None


def test_allow_unenforced_is_said_at_the_top() -> None:
    trials = _trials(["500m", "1"])
    records = {
        "t0": record(fallback(0.5, [0], cpu_enforced=False, allow_unenforced=True)),
        "t1": record(fallback(1.0, [1], cpu_enforced=True, allow_unenforced=True)),
    }
    limits = campaign_limits(QUICKSTART_FACTORS, trials, records)
    assert allowed_unenforced(records) == ["t0", "t1"]
    top = banner(limits, len(allowed_unenforced(records)))
    assert "Not enforced: cpu" in top and "2 trial(s) ran with `--allow-unenforced`" in top
    assert banner([], 0) == ""


def test_levels_match_the_design_column_as_pandas_reads_it() -> None:
    """YAML's 1 and 2 come back from design.csv as 1.0 and 2.0 when a column is float."""
    factors = [{"name": "gpus", "target": GPU, "levels": [1, 2]}]
    trials = pd.DataFrame({"trial_id": ["a", "b"], "gpus": [1.0, 2.0]})
    (gpus,) = campaign_limits(factors, trials, {})
    assert [(lv.level, lv.trials) for lv in gpus.levels] == [("1", ("a",)), ("2", ("b",))]
    assert gpus.levels[0].notes == ("no trial at this level left a result",)
    assert not gpus.flagged  # nothing recorded: unknown, not flagged
