"""`trainbed schema` prints a JSON Schema that validates the shipped example campaigns."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from trainbed.orchestrator.cli import app

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "experiments").glob("*.yaml"))


def test_schema_validates_examples() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["properties"]["kind"]["const"] == "Campaign"
    for path in EXAMPLES:
        jsonschema.validate(yaml.safe_load(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"apiVersion": "trainbed.io/v1alpha1", "kind": "Job"}, schema)


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_examples_plan(path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 0, result.output
