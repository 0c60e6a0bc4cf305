"""Bad campaign files: exit code 2, one message naming the field, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from trainbed.orchestrator.cli import app

GOOD = """\
apiVersion: trainbed.io/v1alpha1
kind: Campaign
metadata: {name: demo}
spec:
  design: {type: fractional, generators: ["D = ABC"], replicates: 2, seed: 1}
  factors:
    - {name: cpu, target: resources.cpu, levels: ["750m", "1500m"]}
    - {name: memory, target: resources.memory, levels: ["1.5Gi", "3Gi"]}
    - {name: network, target: workload.model, levels: [FashionMNISTCNN, FashionMNISTResNet]}
    - {name: epochs, target: workload.epochs, levels: [5, 10]}
  trial:
    workload: {dataset: digits, model: MLP, epochs: 2, parallelism: 2}
    resources: {cpu: "1", memory: "2Gi"}
  responses: [accuracy, time]
"""


def mutate(path: str, value: object, delete: bool = False) -> str:
    """GOOD with one dotted path (list indices as numbers) set or deleted."""
    data = yaml.safe_load(GOOD)
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if part.isdigit() else node[part]
    last: int | str = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
    if delete:
        del node[last]  # type: ignore[arg-type]
    else:
        node[last] = value  # type: ignore[index]
    return yaml.safe_dump(data)


CASES: list[tuple[str, str, str]] = [
    ("invalid-yaml", "apiVersion: [unclosed\n", "invalid YAML"),
    ("tab-indent", "apiVersion: x\n\tkind: y\n", "invalid YAML"),
    ("empty", "", "(file)"),
    ("list-doc", "- a\n- b\n", "(file)"),
    ("scalar-doc", "just a string\n", "(file)"),
    ("wrong-api", mutate("apiVersion", "trainbed.io/v1"), "apiVersion"),
    ("no-api", mutate("apiVersion", None, delete=True), "apiVersion"),
    ("wrong-kind", mutate("kind", "Job"), "kind"),
    ("no-metadata", mutate("metadata", None, delete=True), "metadata"),
    ("bad-name", mutate("metadata.name", "Demo_Campaign"), "metadata.name"),
    ("long-name", mutate("metadata.name", "x" * 50), "metadata.name"),
    ("no-spec", mutate("spec", None, delete=True), "spec"),
    ("unknown-spec-key", mutate("spec.extra", 1), "spec.extra"),
    ("no-factors", mutate("spec.factors", []), "spec.factors"),
    ("unknown-target", mutate("spec.factors.0.target", "resources.cpux"), "spec.factors[0].target"),
    ("unknown-section", mutate("spec.factors.1.target", "hardware.cpu"), "spec.factors[1].target"),
    (
        "target-into-leaf",
        mutate("spec.factors.3.target", "workload.epochs.max"),
        "spec.factors[3].target",
    ),
    (
        "bad-cpu-level",
        mutate("spec.factors.0.levels", ["750m", "fast"]),
        "spec.factors[0].levels[1]",
    ),
    (
        "bad-memory-level",
        mutate("spec.factors.1.levels", ["1.5Xi", "3Gi"]),
        "spec.factors[1].levels[0]",
    ),
    (
        "negative-memory",
        mutate("spec.factors.1.levels", ["-1Gi", "3Gi"]),
        "spec.factors[1].levels[0]",
    ),
    (
        "bad-model-level",
        mutate("spec.factors.2.levels", ["CNN", "FashionMNISTResNet"]),
        "spec.factors[2].levels[0]",
    ),
    ("bad-epochs-level", mutate("spec.factors.3.levels", [5, "ten"]), "spec.factors[3].levels[1]"),
    ("zero-epochs", mutate("spec.factors.3.levels", [0, 10]), "spec.factors[3].levels[0]"),
    ("one-level", mutate("spec.factors.3.levels", [5]), "spec.factors[3].levels"),
    (
        "repeated-level",
        mutate("spec.factors.0.levels", ["1", "1000m"]),
        "spec.factors[0].levels[1]",
    ),
    ("duplicate-names", mutate("spec.factors.1.name", "cpu"), "spec.factors[1].name"),
    ("bad-factor-name", mutate("spec.factors.1.name", "mem ory"), "spec.factors[1].name"),
    (
        "same-target-twice",
        mutate("spec.factors.1.target", "resources.cpu"),
        "spec.factors[1].target",
    ),
    (
        "missing-levels",
        mutate("spec.factors.0.levels", None, delete=True),
        "spec.factors[0].levels",
    ),
    ("unknown-factor-key", mutate("spec.factors.0.unit", "cores"), "spec.factors[0].unit"),
    ("bad-design-type", mutate("spec.design.type", "partial"), "spec.design.type"),
    ("generators-and-resolution", mutate("spec.design.resolution", 4), "spec.design"),
    ("fraction-without-either", mutate("spec.design.generators", None, delete=True), "spec.design"),
    ("full-with-generators", mutate("spec.design.type", "full"), "spec.design"),
    ("alias-main-effects", mutate("spec.design.generators", ["D = A"]), "spec.design.generators"),
    ("unknown-letter", mutate("spec.design.generators", ["D = ABX"]), "spec.design.generators[0]"),
    ("self-generator", mutate("spec.design.generators", ["D = ABD"]), "spec.design.generators[0]"),
    (
        "malformed-generator",
        mutate("spec.design.generators", ["D is ABC"]),
        "spec.design.generators[0]",
    ),
    (
        "generator-twice",
        mutate("spec.design.generators", ["D = ABC", "D = AB"]),
        "spec.design.generators[1]",
    ),
    (
        "all-generated",
        mutate("spec.design.generators", ["A = BCD", "B = ACD", "C = ABD"]),
        "spec.design.generators",
    ),
    ("zero-replicates", mutate("spec.design.replicates", 0), "spec.design.replicates"),
    # a resolution is a number: the string "4" and true are refused, not coerced to 4 and 1
    (
        "resolution-string",
        mutate("spec.design", {"type": "fractional", "resolution": "4"}),
        "spec.design.resolution: Input should be a valid integer (got '4')",
    ),
    (
        "resolution-bool",
        mutate("spec.design", {"type": "fractional", "resolution": True}),
        "spec.design.resolution: Input should be a valid integer (got True)",
    ),
    (
        "generator-names-i",
        mutate("spec.design.generators", ["D = ABI"]),
        "spec.design.generators[0]: 'D = ABI' names I, the identity",
    ),
    ("factor-named-block", mutate("spec.factors.1.name", "block"), "spec.factors[1].name"),
    ("unknown-foldover", mutate("spec.design.foldover", ["gpu"]), "spec.design.foldover[0]"),
    ("bad-response", mutate("spec.responses", ["accuracy", "speed"]), "spec.responses[1]"),
    ("repeated-response", mutate("spec.responses", ["time", "time"]), "spec.responses"),
    ("bad-tradeoff", mutate("spec.tradeoff", ["time", "speed"]), "spec.tradeoff[1]"),
    ("one-tradeoff", mutate("spec.tradeoff", ["time"]), "spec.tradeoff"),
    ("repeated-tradeoff", mutate("spec.tradeoff", ["time", "time"]), "spec.tradeoff"),
    ("bad-default-cpu", mutate("spec.trial.resources.cpu", "lots"), "spec.trial.resources.cpu"),
    (
        "bad-dataset",
        mutate("spec.trial.workload.dataset", "imagenet"),
        "spec.trial.workload.dataset",
    ),
    (
        "bad-threshold",
        mutate("spec.trial.workload.target_accuracy", {"threshold": 85}),
        "spec.trial.workload.target_accuracy.threshold",
    ),
    (
        "bad-sync-period",
        mutate("spec.trial.workload.sync_period", 0),
        "spec.trial.workload.sync_period",
    ),
    ("unknown-workload-key", mutate("spec.trial.workload.gpus", 2), "spec.trial.workload.gpus"),
]


def _impossible_resolution() -> str:
    data = yaml.safe_load(GOOD)
    data["spec"]["design"] = {"type": "fractional", "resolution": 5}
    return yaml.safe_dump(data)


def _multilevel_fraction() -> str:
    data = yaml.safe_load(GOOD)
    data["spec"]["factors"][3]["levels"] = [5, 10, 15]
    return yaml.safe_dump(data)


CASES += [
    ("impossible-resolution", _impossible_resolution(), "spec.design.resolution"),
    ("multilevel-fraction", _multilevel_fraction(), "spec.design.type"),
]


def test_good_file_plans(tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output


def test_there_are_at_least_thirty_distinct_cases() -> None:
    assert len({text for _, text, _ in CASES}) >= 30


@pytest.mark.parametrize(("case", "text", "field"), CASES, ids=[c[0] for c in CASES])
def test_malformed_file_exits_2_naming_the_field(
    tmp_path: Path, case: str, text: str, field: str
) -> None:
    path = tmp_path / f"{case}.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2, result.output
    assert field in result.output, result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 3, "a short message, not a dump"


def test_real_process_exit_code_and_no_traceback(tmp_path: Path) -> None:
    """The CliRunner cases above, checked once through a real process and console script."""
    for case, text, field in CASES[:3] + CASES[14:15] + CASES[-2:]:
        path = tmp_path / f"{case}.yaml"
        path.write_text(text)
        proc = subprocess.run(
            [sys.executable, "-m", "trainbed.orchestrator.cli", "plan", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, (case, proc.stderr)
        assert field in proc.stderr and "Traceback" not in proc.stderr + proc.stdout


def test_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2 and "no such file" in result.output


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        [
            "spec.design",
            "spec.factors",
            "spec.factors.0",
            "spec.factors.0.levels",
            "spec.trial",
            "spec.trial.workload",
            "spec.trial.resources",
            "spec.responses",
            "metadata",
            "spec.design.generators",
            "spec.factors.2.target",
            "spec.trial.workload.target_accuracy",
        ]
    ),
    value=_json,
)
def test_any_mutation_is_accepted_or_a_clean_user_error(
    tmp_path: Path, path: str, value: object
) -> None:
    """Property: whatever garbage lands in the file, the CLI never crashes with a traceback."""
    target = tmp_path / "fuzz.yaml"
    target.write_text(mutate(path, value))
    result = CliRunner().invoke(app, ["plan", str(target), "--json"])
    assert result.exit_code in (0, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
