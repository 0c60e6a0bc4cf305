"""The Campaign CRD: valid apiextensions/v1, structural, and it accepts the shipped examples.

The API server's own checks run in the integration tests; here the schema is read back as JSON
Schema (draft 4 has OpenAPI 3.0's boolean ``exclusiveMinimum``) with unknown fields forbidden, as
``kubectl``'s strict field validation does, and every shipped example must pass.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.cluster.simulated import SIM_DURATION
from trainbed.contract.campaign import Campaign
from trainbed.orchestrator.kube.objects.crd import (
    campaign_crd,
    campaign_crd_yaml,
    structural_schema,
)

ROOT = Path(__file__).resolve().parents[2]
CHART_CRD = ROOT / "charts" / "trainbed" / "crds" / "campaigns.trainbed.io.yaml"
EXAMPLES = sorted((ROOT / "experiments").glob("*.yaml"))
PRESERVE = "x-kubernetes-preserve-unknown-fields"
INT_OR_STRING = "x-kubernetes-int-or-string"


def _schema() -> dict[str, Any]:
    return campaign_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _as_json_schema(node: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI v3.0 structural schema -> draft-4 JSON Schema, unknown fields forbidden."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes") and k != "nullable"}
    if node.get(INT_OR_STRING):
        out["type"] = ["string", "integer"]
    if "properties" in node:
        out["properties"] = {k: _as_json_schema(v) for k, v in node["properties"].items()}
        if not node.get(PRESERVE):
            out["additionalProperties"] = False
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = _as_json_schema(node["additionalProperties"])
    if "items" in node:
        out["items"] = _as_json_schema(node["items"])
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def _validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(_as_json_schema(_schema()))


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, child in node.get("properties", {}).items():
        found += _walk(child, f"{path}.{name}")
    if isinstance(node.get("additionalProperties"), dict):
        found += _walk(node["additionalProperties"], f"{path}.*")
    if "items" in node:
        found += _walk(node["items"], f"{path}[]")
    return found


def test_crd_validates_as_apiextensions_v1() -> None:
    kubernetes_validate.validate(campaign_crd(), latest_version(), strict=True)


def test_chart_crd_is_generated() -> None:
    assert CHART_CRD.read_text() == campaign_crd_yaml(), "stale CRD: run scripts/gen-crd"
    assert yaml.safe_load(CHART_CRD.read_text()) == campaign_crd()


def test_names_version_and_columns() -> None:
    spec = campaign_crd()["spec"]
    assert campaign_crd()["metadata"]["name"] == "campaigns.trainbed.io"
    assert spec["group"] == "trainbed.io" and spec["scope"] == "Namespaced"
    names = spec["names"]
    assert (names["kind"], names["plural"]) == ("Campaign", "campaigns")
    assert names["singular"] == "campaign"
    assert names["shortNames"] == ["camp"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ("string", ".status.phase"),
        "Done": ("integer", ".status.done"),
        "Failed": ("integer", ".status.failed"),
        "Queued": ("integer", ".status.queued"),
        "Running": ("integer", ".status.running"),
        "Total": ("integer", ".status.total"),
        "Blocked": ("string", ".status.blocked"),
        "Age": ("date", ".metadata.creationTimestamp"),
    }


def test_schema_is_structural() -> None:
    """The API server's structural rules that a JSON Schema converter could break."""
    schema = _schema()
    assert schema["properties"]["metadata"] == {"type": "object"}
    assert schema["properties"]["status"][PRESERVE] is True
    for path, node in _walk(schema):
        assert "type" in node or node.get(INT_OR_STRING) or node.get(PRESERVE), path
        banned = {"$ref", "$defs", "anyOf", "oneOf", "allOf", "not", "const", "title"}
        assert not banned & set(node), (path, banned & set(node))
        assert "prefixItems" not in node and "$schema" not in node, path
        assert node.get("additionalProperties") is not False, path
        assert not ("properties" in node and "additionalProperties" in node), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            if bound in node:
                assert node[bound] is True and bound.replace("exclusiveM", "m") in node, path
        if node.get("type") == "array":
            assert "items" in node, path
        if "default" in node:
            assert node["default"] is not None, path
            jsonschema.Draft4Validator(_as_json_schema(node)).validate(node["default"])


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_are_accepted(path: Path) -> None:
    _validator().validate(yaml.safe_load(path.read_text()))


def _example() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "experiments" / "fmnist-2k1.yaml").read_text())


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return doc


# (change, accepted by the CRD). Each accepted one is also a valid campaign for pydantic.
CHANGES = [
    ("spec.trial.resources.cpu", 1.5, True),
    ("spec.trial.resources.cpu", 2, True),
    ("spec.trial.resources.memory", "3Gi", True),
    ("spec.trial.workload.sync_period", None, True),
    ("spec.trial.workload.target_accuracy", None, True),
    ("spec.trial.workload.target_accuracy", {"threshold": 0.9, "max_epochs": None}, True),
    ("spec.kubernetes.pod_annotations", {SIM_DURATION: "5s"}, True),
    ("spec.execution.trial_timeout_s", 0.5, True),
    ("spec.execution.trial_timeout_s", 0, False),
    ("spec.trial.workload.model", "VGG", False),
    ("spec.trial.workload.epochs", 0, False),
    ("spec.trial.workload.typo", 1, False),
    ("spec.kubernetes.cleanup", "sometimes", False),
    ("spec.factors", [], False),
    ("spec.trial.workload.target_accuracy", {"threshold": 1.5}, False),
    ("spec.kubernetes.pod_annotations", {"a": 1}, False),
]


@pytest.mark.parametrize(("field", "value", "accepted"), CHANGES)
def test_schema_agrees_with_the_models(field: str, value: Any, accepted: bool) -> None:
    doc = _set(_example(), field, value)
    errors = list(_validator().iter_errors(doc))
    assert (not errors) == accepted, errors
    if accepted:
        Campaign.model_validate(doc)


# JSON Schema constructs -> the structural form the converter must produce.
CONVERSIONS = [
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "integer", "nullable": True}),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, {INT_OR_STRING: True}),
    ({"anyOf": [{"type": "string"}, {"type": "number"}]}, {PRESERVE: True}),
    ({"const": "x"}, {"type": "string", "enum": ["x"]}),
    (
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
    ),
    ({"type": "array", "items": {}}, {"type": "array", "items": {PRESERVE: True}}),
    ({"type": "object", "additionalProperties": True}, {"type": "object", PRESERVE: True}),
    (
        {"type": "object", "properties": {}, "additionalProperties": False, "title": "T"},
        {"type": "object", "properties": {}},
    ),
    ({"type": "integer", "default": None}, {"type": "integer"}),
    ({"$ref": "#/$defs/A", "description": "d"}, {"type": "string", "description": "d"}),
    ({}, {PRESERVE: True}),
]


@pytest.mark.parametrize(("json_schema", "expected"), CONVERSIONS)
def test_conversions(json_schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert structural_schema({**json_schema, "$defs": {"A": {"type": "string"}}}) == expected
