"""resources.bandwidth and resources.latency in the campaign file: parsing, level validation, the
field a refusal names, and the refusals themselves (local without the means; Kubernetes for
latency), each one clear line and exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainbed.contract.errors import SpecError, UserError
from trainbed.orchestrator.cli import app
from trainbed.orchestrator.kube.objects.network_limits import LATENCY_REFUSAL, refuse_unenforceable
from trainbed.orchestrator.local.network_host import NetworkUnavailable, local_network
from trainbed.orchestrator.plan.checks import network_fields
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign


def campaign(factors: list[dict], resources: dict | None = None, design: str = "full") -> dict:
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": "net"},
        "spec": {
            "design": {"type": design, "replicates": 1},
            "factors": factors,
            "trial": {
                "workload": {"dataset": "digits", "parallelism": 2},
                "resources": {"cpu": "1", "memory": "1Gi", **(resources or {})},
            },
        },
    }


BANDWIDTH = {"name": "bandwidth", "target": "resources.bandwidth", "levels": ["20M", "1G"]}
LATENCY = {"name": "latency", "target": "resources.latency", "levels": ["0ms", "20ms"]}
LR = {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]}
LEVEL0, LEVEL1 = "spec.factors[0].levels[0]", "spec.factors[0].levels[1]"


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (campaign([{**BANDWIDTH, "levels": ["20M", "fast"]}]), LEVEL1, "'fast'"),
        (campaign([{**BANDWIDTH, "levels": ["1M", "1000k"]}]), LEVEL1, "repeats"),
        (campaign([{**BANDWIDTH, "levels": [None, None]}]), LEVEL1, "repeats"),
        (campaign([{**LATENCY, "levels": ["1ms", "1000us"]}]), LEVEL1, "repeats"),
        (campaign([{**LATENCY, "levels": [5, 20]}]), LEVEL0, "no unit"),
        (campaign([LR], {"bandwidth": "0.1k"}), "spec.trial.resources.bandwidth", "below 1k"),
        (campaign([LR], {"latency": "20"}), "spec.trial.resources.latency", "no unit"),
    ],
)  # fmt: skip
def test_bad_levels_name_the_field(data: dict, field: str, reason: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_campaign(data)
    assert err.value.field == field and reason in err.value.reason, err.value


@pytest.mark.parametrize(
    ("data", "fields"),
    [
        (campaign([LR]), {}),
        (campaign([BANDWIDTH]), {"resources.bandwidth": "spec.factors[0].levels"}),
        (
            campaign([LR, LATENCY], {"bandwidth": "10M"}),
            {
                "resources.latency": "spec.factors[1].levels",
                "resources.bandwidth": "spec.trial.resources.bandwidth",
            },
        ),
        # "no limit" as a level: the factor still sets the key
        (
            campaign([{**BANDWIDTH, "levels": ["20M", None]}]),
            {"resources.bandwidth": "spec.factors[0].levels"},
        ),
    ],
)  # fmt: skip
def test_network_fields(data: dict, fields: dict) -> None:
    assert network_fields(parse_campaign(data)) == fields


def _unavailable(need_delay: bool) -> str:
    raise NetworkUnavailable("network namespaces and tc need root (an injected probe)")


def test_local_refusal_names_the_field_and_the_reason() -> None:
    parsed = parse_campaign(campaign([BANDWIDTH, LR]))
    with pytest.raises(UserError) as err:
        local_network(parsed, plan_campaign(parsed).trials, probe=_unavailable)
    message = str(err.value)
    assert message.startswith("resources.bandwidth (spec.factors[0].levels): cannot be enforced")
    assert "need root" in message and "\n" not in message


def test_local_without_network_keys_needs_no_probe() -> None:
    parsed = parse_campaign(campaign([LR]))
    assert local_network(parsed, plan_campaign(parsed).trials, probe=_unavailable) is None


def test_local_asks_the_probe_for_delay_only_where_a_trial_delays() -> None:
    asked: list[bool] = []

    def probe(need_delay: bool) -> str | None:
        asked.append(need_delay)
        return "netem" if need_delay else None

    for data, need in [(campaign([BANDWIDTH]), False), (campaign([LATENCY]), True)]:
        parsed = parse_campaign(data)
        network = local_network(parsed, plan_campaign(parsed).trials, probe=probe)
        assert network is not None and network.delay_by == ("netem" if need else None)
    assert asked == [False, True]


def test_local_gpu_trials_are_refused() -> None:
    parsed = parse_campaign(campaign([BANDWIDTH], {"gpu": 1}))
    with pytest.raises(UserError, match="GPU"):
        local_network(parsed, plan_campaign(parsed).trials, probe=lambda need: None)


def test_kubernetes_refuses_latency_naming_the_field() -> None:
    refuse_unenforceable(parse_campaign(campaign([BANDWIDTH])))  # bandwidth is fine
    for data, field in [
        (campaign([BANDWIDTH, LATENCY]), "spec.factors[1].levels"),
        (campaign([BANDWIDTH], {"latency": "5ms"}), "spec.trial.resources.latency"),
    ]:
        with pytest.raises(SpecError) as err:
            refuse_unenforceable(parse_campaign(data), "c.yaml")
        assert err.value.field == field and err.value.reason == LATENCY_REFUSAL


@pytest.mark.parametrize(
    "args", [["submit"], ["run", "--backend", "kubernetes", "--no-analyze"]], ids=["submit", "run"]
)
def test_kubernetes_commands_refuse_latency_before_any_api_call(
    tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # no kubeconfig at all: the refusal must come before the client is even built
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump(campaign([BANDWIDTH, LATENCY])))
    result = CliRunner().invoke(app, [args[0], str(path), *args[1:]])
    assert result.exit_code == 2, result.output
    assert "spec.factors[1].levels: resources.latency cannot be enforced on Kubernetes" in (
        " ".join(result.output.split())
    )
    assert "Traceback" not in result.output
