"""The noise guard's contract: the pods get their node's name for it, result.json carries its
records (and reads back), and a pilot's iteration cap is validated."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from trainbed.contract.env import NODE_NAME
from trainbed.contract.noise import Calibration, HostSample, LoadSamples, RankNoise
from trainbed.contract.records import Result, read_result, write_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.kube.objects import manifests
from trainbed.orchestrator.plan.parse import load_campaign
from trainbed.orchestrator.plan.trials import plan_campaign

ROOT = Path(__file__).resolve().parents[2]


def test_worker_pods_get_their_node_name_from_the_downward_api() -> None:
    campaign = load_campaign(ROOT / "experiments" / "quickstart.yaml")
    trial = plan_campaign(campaign).trials[0]
    job = manifests.trial_job(campaign, trial, namespace="n")
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env[NODE_NAME]["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}


def test_result_round_trips_the_noise_fields(tmp_path: Path) -> None:
    sample = HostSample(time=1.0, loadavg=[0.5, 0.4, 0.3], cpu={"user": 3}, cpus=2)
    result = Result(
        status="succeeded",
        steps_per_epoch=21,
        noise=[
            RankNoise(
                rank=0,
                host="h",
                node="n1",
                calibration_before=Calibration(seconds=0.2, repeats=[0.2], threads=1),
                before=sample,
                after=sample,
                cpu_wait_pct=3.0,
            )
        ],
        concurrent_trials=["t2"],
        load_samples=LoadSamples(mean=1.0, max=2.0, samples=3),
    )
    write_result(tmp_path, result)
    back = read_result(tmp_path)
    assert back == result
    assert back is not None and back.noise is not None and back.noise[0].node == "n1"


def test_results_without_the_noise_fields_still_read(tmp_path: Path) -> None:
    (tmp_path / "result.json").write_text('{"status": "failed"}')
    back = read_result(tmp_path)
    assert back is not None and back.noise is None and back.concurrent_trials is None


@pytest.mark.parametrize(("value", "ok"), [(None, True), (2, True), (20, True), (1, False)])
def test_pilot_iterations(value: int | None, ok: bool) -> None:
    spec = {
        "campaign": "c",
        "trial_id": "t",
        "seed": 1,
        "workload": {},
        "resources": {},
        "pilot_iterations": value,
    }
    if ok:
        assert TrialSpec.model_validate(spec).pilot_iterations == value
    else:
        with pytest.raises(ValidationError):
            TrialSpec.model_validate(spec)
