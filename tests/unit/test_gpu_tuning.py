"""The power limit and clock plan (set, read back, restore) as a pure function, the restore file
and its use after a crash or a killed driver, with a recording stand-in for NVML (no GPU here;
scripts/gpu-check runs the real one on the GPU machine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.fake_nvml import H200, FakeNvml
from trainbed.contract.errors import SpecError, UserError
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.kube.objects.network_limits import refuse_unenforceable
from trainbed.orchestrator.local.gpu_assignment import GpuDevice
from trainbed.orchestrator.local.gpu_host import GpuHost, restore_pending
from trainbed.orchestrator.local.gpu_tuning import (
    Step,
    TuningPlan,
    TuningRefused,
    plan_tuning,
    range_problem,
    read_back_record,
)
from trainbed.orchestrator.plan.parse import parse_campaign

SECOND = GpuDevice(**{**H200.__dict__, "index": 1, "uuid": "GPU-bbbb", "power_limit_w": 450.0})


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("devices", "power", "clock", "apply", "restore"),
    [
        ([H200], None, None, [], []),
        ([H200], 300, None, [("set_power_limit", 0, 300.0)], [("set_power_limit", 0, 700.0)]),
        ([H200], None, 1200, [("lock_clock", 0, 1200.0)], [("reset_clock", 0, None)]),
        (
            [H200],
            400,
            1200,
            [("set_power_limit", 0, 400.0), ("lock_clock", 0, 1200.0)],
            [("reset_clock", 0, None), ("set_power_limit", 0, 700.0)],
        ),
        (
            [H200, SECOND],
            300,
            None,
            [("set_power_limit", 0, 300.0), ("set_power_limit", 1, 300.0)],
            [("set_power_limit", 1, 450.0), ("set_power_limit", 0, 700.0)],  # each its own
        ),
        ([H200], 200, 345, [("set_power_limit", 0, 200.0), ("lock_clock", 0, 345.0)], None),
        ([H200], 700, 1980, [("set_power_limit", 0, 700.0), ("lock_clock", 0, 1980.0)], None),
    ],
)
def test_plan_sets_and_restores(
    devices: list[GpuDevice],
    power: float | None,
    clock: int | None,
    apply: list[tuple],
    restore: list[tuple] | None,
) -> None:
    plan = plan_tuning(devices, power, clock)
    assert [(s.action, s.index, s.value) for s in plan.apply] == apply
    if restore is not None:
        assert [(s.action, s.index, s.value) for s in plan.restore] == restore
    assert plan.empty == (not apply)
    assert TuningPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("power", "clock", "message"),
    [
        (
            150,
            None,
            "resources.gpu_power_limit 150 W is outside GPU 0 (NVIDIA H200)'s allowed range "
            "200-700 W",
        ),
        (701, None, "allowed range 200-700 W"),
        (
            None,
            2100,
            "resources.gpu_clock 2100 MHz is outside GPU 0 (NVIDIA H200)'s supported SM clocks "
            "345-1980 MHz",
        ),
        (None, 100, "345-1980 MHz"),
    ],
)
def test_levels_outside_the_range_are_refused_naming_it(
    power: float | None, clock: int | None, message: str
) -> None:
    assert message in (range_problem(H200, power, clock) or "")
    with pytest.raises(TuningRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan_tuning([H200], power, clock)


@pytest.mark.timeout(10)
def test_a_device_without_ranges_or_a_readable_limit_is_refused() -> None:
    bare = GpuDevice(0, "GPU-x", "Tesla K80", 12 << 30)
    assert "reports no settable power limit range" in (range_problem(bare, 100, None) or "")
    assert "reports no supported SM clocks" in (range_problem(bare, None, 900) or "")
    unreadable = GpuDevice(**{**H200.__dict__, "power_limit_w": None})
    with pytest.raises(TuningRefused, match="could not be restored"):
        plan_tuning([unreadable], 300, None)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("power_read", "confirmed"),
    [({0: 300.0}, True), ({0: 300.4}, True), ({0: 700.0}, False), ({0: None}, False)],
)
def test_read_back(power_read: dict[int, float | None], confirmed: bool) -> None:
    plan = plan_tuning([H200], 300, 1200)
    record = read_back_record(plan, power_read, {0: 1200})
    assert record["gpu_power_limit_confirmed"] is confirmed
    assert record["gpu_power_limit_w"] == power_read[0]
    assert record["gpu_clock_mhz"] == 1200
    assert record["gpu_clock_target_mhz"] == 1200


def tuned_trial(power: float | None, clock: int | None) -> TrialSpec:
    return TrialSpec(
        campaign="c",
        trial_id="t-0001",
        seed=0,
        workload=Workload(),
        resources=Resources(gpu=1, gpu_power_limit=power, gpu_clock=clock),
    )


@pytest.mark.timeout(10)
def test_host_writes_the_restore_file_before_changing_and_restores(tmp_path: Path) -> None:
    nvml = FakeNvml()
    restore_file = tmp_path / "gpu-restore.json"
    host = GpuHost(nvml, [H200], restore_file)  # type: ignore[arg-type]
    seen_file: list[bool] = []
    original = nvml.set_power_limit_w

    def spy(index: int, watts: float) -> None:
        seen_file.append(restore_file.exists())
        original(index, watts)

    nvml.set_power_limit_w = spy  # type: ignore[method-assign]
    record = host.tune(tuned_trial(300, 1200), [H200])
    assert seen_file == [True]
    assert record["gpu_power_limit_w"] == 300.0 and record["gpu_power_limit_confirmed"]
    assert record["gpu_clock_mhz"] == 1200
    assert (nvml.limits[0], nvml.locked[0]) == (300.0, 1200)
    assert host.restore("t-0001") == []
    assert (nvml.limits[0], nvml.locked[0]) == (700.0, None)
    assert not restore_file.exists()


@pytest.mark.timeout(10)
def test_a_failed_change_restores_what_was_set(tmp_path: Path) -> None:
    nvml = FakeNvml(fail_on="lock")
    host = GpuHost(nvml, [H200], tmp_path / "gpu-restore.json")  # type: ignore[arg-type]
    with pytest.raises(UserError, match="setting the GPU failed .*what was set is restored"):
        host.tune(tuned_trial(300, 1200), [H200])
    assert nvml.limits[0] == 700.0
    assert not (tmp_path / "gpu-restore.json").exists()


@pytest.mark.timeout(10)
def test_a_killed_drivers_settings_are_restored_first(tmp_path: Path) -> None:
    nvml = FakeNvml()
    restore_file = tmp_path / "gpu-restore.json"
    host = GpuHost(nvml, [H200], restore_file)  # type: ignore[arg-type]
    host.tune(tuned_trial(250, None), [H200])
    # the driver is killed here: nothing restores; the file stays behind
    assert nvml.limits[0] == 250.0 and restore_file.exists()
    fresh = FakeNvml()
    fresh.limits[0] = 250.0
    done = restore_pending(restore_file, opener=lambda: (fresh, ""))
    assert done == ["t-0001: GPU 0 set_power_limit"]
    assert fresh.limits[0] == 700.0 and not restore_file.exists()
    assert restore_pending(restore_file, opener=lambda: (fresh, "")) == []


@pytest.mark.timeout(10)
def test_pending_settings_without_nvml_are_an_error(tmp_path: Path) -> None:
    restore_file = tmp_path / "gpu-restore.json"
    plan = TuningPlan(restore=(Step("set_power_limit", 0, "GPU-aaaa", 700.0),))
    restore_file.write_text(json.dumps({"t-0001": plan.to_json()}))
    with pytest.raises(UserError, match="cannot be restored here: no driver"):
        restore_pending(restore_file, opener=lambda: (None, "no driver"))
    assert restore_file.exists()


def kube_campaign(**resources: object) -> dict:
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": "k"},
        "spec": {
            "design": {"type": "full", "replicates": 1},
            "factors": [
                {"name": "power", "target": "resources.gpu_power_limit", "levels": [300, 700]}
            ],
            "trial": {"resources": {"gpu": 1, **resources}},
            "responses": ["time"],
        },
    }


@pytest.mark.timeout(10)
def test_kubernetes_refuses_gpu_tuning_with_the_reason() -> None:
    with pytest.raises(SpecError) as err:
        refuse_unenforceable(parse_campaign(kube_campaign()), "c.yaml")
    text = str(err.value)
    assert text.startswith("c.yaml: spec.factors[0].levels: resources.gpu_power_limit cannot be")
    assert "privileged" in text and "restricted Pod Security" in text
    data = kube_campaign(gpu_clock=1200)
    data["spec"]["factors"][0] = {"name": "lr", "target": "workload.lr", "levels": [0.1, 0.2]}
    with pytest.raises(SpecError, match=r"spec.trial.resources.gpu_clock: resources.gpu_clock"):
        refuse_unenforceable(parse_campaign(data))


def tuning_campaign(**resources: object) -> dict:
    levels = resources.pop("levels", [300, 700])
    data = kube_campaign(**resources)
    data["spec"]["factors"][0]["levels"] = levels
    return data


class DeniedNvml(FakeNvml):
    def set_power_limit_w(self, index: int, watts: float) -> None:
        raise RuntimeError("NVMLError_NoPermission: Insufficient Permissions")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("resources", "nvml", "uid", "refusal"),
    [
        (
            {"levels": [150, 700]},
            FakeNvml,
            0,
            "150 W is outside GPU 0 (NVIDIA H200)'s allowed range",
        ),
        ({}, DeniedNvml, 0, "resources.gpu_power_limit: GPU 0 (NVIDIA H200) refuses a power limit"),
        ({"gpu_clock": 1200}, FakeNvml, 1000, "resources.gpu_clock: locking GPU clocks needs root"),
        (
            {"gpu_clock": 2500},
            FakeNvml,
            0,
            "2500 MHz is outside GPU 0 (NVIDIA H200)'s supported SM",
        ),
        ({}, FakeNvml, 0, None),
    ],
)
def test_local_refusals_before_the_first_trial(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    resources: dict,
    nvml: type,
    uid: int,
    refusal: str | None,
) -> None:
    from trainbed.orchestrator.local import gpu_host
    from trainbed.orchestrator.plan.trials import plan_campaign

    monkeypatch.setattr(gpu_host.os, "geteuid", lambda: uid)
    parsed = parse_campaign(tuning_campaign(**resources))
    trials = plan_campaign(parsed).trials
    fake = nvml()
    restore_file = tmp_path / "gpu-restore.json"
    if refusal is None:
        host = gpu_host.local_gpus(parsed, trials, restore_file, lambda: (fake, ""))
        assert host is not None and [d.uuid for d in host.devices] == ["GPU-aaaa"]
        assert fake.limits[0] == 700.0  # the probe wrote the current limit back, nothing else
        return
    with pytest.raises(UserError) as err:
        gpu_host.local_gpus(parsed, trials, restore_file, lambda: (fake, ""))
    assert refusal in str(err.value) and "\n" not in str(err.value)
    assert fake.limits[0] == 700.0 and fake.locked[0] is None and not restore_file.exists()
