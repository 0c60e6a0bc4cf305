"""Screening designs: Plackett-Burman run sizes, partial aliasing, and what plan shows of them.

Expected numbers: a 12-run Plackett-Burman design correlates each main effect with every
two-factor interaction that does not contain it at +-1/3 (generalized resolution 3 + 1 - 4/12 =
3.67); the 20-run design at +-0.2 or +-0.6 (3.4). Deng, L.-Y. & Tang, B. (1999), "Generalized
resolution and minimum aberration criteria for Plackett-Burman and other nonregular factorial
designs", Statistica Sinica 9, 1071-1082, tabulate both.
"""

from __future__ import annotations

import json
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from pydoe import pbdesign
from typer.testing import CliRunner

from tests.unit.test_cli_imports import HEAVY, _modules_after
from trainbed.orchestrator.cli import app
from trainbed.orchestrator.plan.design import build_design
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.screening import (
    generalized_resolution,
    pb_matrix,
    screening_matrix,
)

TARGETS = {
    "workload.epochs": [1, 2],
    "workload.batch_size": [16, 32],
    "workload.lr": [0.01, 0.1],
    "workload.optimizer": ["sgd", "adam"],
    "workload.model": ["MLP", "LeNet5"],
    "workload.parallelism": [1, 2],
    "workload.dataloader_workers": [0, 1],
    "workload.batch_norm": [False, True],
    "workload.seed": [1, 2],
    "workload.validation_fraction": [0.1, 0.2],
    "resources.cpu": ["1", "2"],
    "resources.memory": ["1Gi", "2Gi"],
    "resources.gpu": [0, 1],
    "workload.sync_period": [-1, 1],
}


def screening(factors: int, **design: object) -> dict:
    """A screening campaign over the first ``factors`` targets (at most len(TARGETS))."""
    items = list(TARGETS.items())
    specs = [{"name": f"f{i}", "target": t, "levels": lv} for i, (t, lv) in enumerate(items)]
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": "screen"},
        "spec": {
            "design": {"type": "screening", **design},
            "factors": specs[:factors],
        },
    }


def _correlations(matrix: np.ndarray) -> set[float]:
    k = matrix.shape[1]
    out = set()
    for i in range(k):
        for a, b in combinations([j for j in range(k) if j != i], 2):
            out.add(round(abs(float(np.mean(matrix[:, i] * matrix[:, a] * matrix[:, b]))), 4))
    return out


@pytest.mark.parametrize(("factors", "runs"), [(5, 12), (11, 12), (12, 20), (14, 20)])
def test_default_run_size_is_the_smallest_that_holds_the_factors(factors: int, runs: int) -> None:
    design = build_design(parse_campaign(screening(factors)))
    assert len(design.points) == runs
    assert design.fraction == f"Plackett-Burman {runs}-run"
    matrix = np.array([[p[x] for x in design.factors] for p in design.points])
    assert np.array_equal(matrix.T @ matrix, runs * np.eye(factors)), "orthogonal main effects"
    assert design.defining_relation == [] and design.generators == []


def test_eleven_factors_in_twelve_runs_partial_aliasing() -> None:
    design = build_design(parse_campaign(screening(11, replicates=2)))
    assert len(design.points) == 12 and len(design.runs) == 24
    assert design.resolution == 3
    assert design.generalized_resolution == pytest.approx(3 + 1 - 4 / 12, abs=1e-4)
    assert design.aliases == [], "no main effect or 2FI is fully aliased with another"
    assert list(design.partial_aliases) == list("ABCDEFGHJKL"), "letters skip I"
    for effect, correlations in design.partial_aliases.items():
        assert len(correlations) == 45  # C(10, 2): every 2FI without the effect's own letter
        assert {abs(r) for r in correlations.values()} == {0.3333}
        assert not any(effect in interaction for interaction in correlations)


def test_pydoe_matrices_are_used_for_12_and_20_runs() -> None:
    assert np.array_equal(pb_matrix(12), pbdesign(11).astype(int))
    assert np.array_equal(pb_matrix(20), pbdesign(19).astype(int))
    assert _correlations(pb_matrix(12)) == {0.3333}
    assert _correlations(pb_matrix(20)) == {0.2, 0.6}
    assert generalized_resolution(pb_matrix(20)) == pytest.approx(3.4)


def test_24_runs_use_the_cyclic_design_not_pydoes_doubled_one() -> None:
    """pydoe's 24-run matrix is the 12-run one doubled: there a main effect equals a 2FI's
    column (|r| = 1). Plackett & Burman's cyclic 24-run design keeps every |r| <= 1/3."""
    ours = pb_matrix(24)
    assert np.array_equal(ours.T @ ours, 24 * np.eye(23))
    assert _correlations(ours) <= {0.0, 0.3333}
    assert 1.0 in _correlations(pbdesign(23).astype(int))
    design = build_design(parse_campaign(screening(14, runs=24)))
    assert len(design.points) == 24 and design.aliases == []
    assert design.generalized_resolution is not None and design.generalized_resolution > 3.5


@pytest.mark.parametrize(
    ("factors", "design", "field", "message"),
    [
        (4, {}, "spec.design.type", "it takes 5 to 23"),
        (12, {"runs": 12}, "spec.design.runs", "need a screening design of 20 or 24 runs"),
        (5, {"runs": 24}, "spec.design.runs", "need a screening design of 12 or 20 runs"),
        (6, {"runs": 16}, "spec.design.runs", "Input should be 12, 20 or 24"),
        (6, {"resolution": 3}, "spec.design", "takes neither generators nor resolution"),
    ],
)
def test_screening_errors_name_the_field_and_the_file(
    tmp_path: Path, factors: int, design: dict, field: str, message: str
) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(screening(factors, **design)))
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2, result.output
    assert f"{path}: {field}" in " ".join(result.output.split()), result.output
    assert message in " ".join(result.output.split()), result.output


def test_runs_belong_to_screening_only() -> None:
    data = screening(5)
    data["spec"]["design"] = {"type": "fractional", "resolution": 3, "runs": 12}
    with pytest.raises(Exception, match="runs is for a screening design only"):
        parse_campaign(data)


def test_plan_json_and_table_show_partial_aliasing(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "screen.yaml"
    path.write_text(yaml.safe_dump(screening(11)))
    result = CliRunner().invoke(app, ["plan", str(path), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["design"] == "screening" and len(plan["runs"]) == 12
    assert plan["resolution"] == 3 and plan["defining_relation"] == [] and plan["aliases"] == []
    assert plan["partial_aliases"]["A"]["BC"] in (1 / 3, -1 / 3, 0.3333, -0.3333)
    assert plan["generalized_resolution"] == pytest.approx(3.6667)
    table = CliRunner().invoke(app, ["plan", str(path)], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "partial aliasing" in table.output and "main effects only" in table.output
    assert "+0.33" in table.output and "-0.33" in table.output


@pytest.mark.parametrize(("runs", "scipy_linalg"), [(12, True), (24, False)])
def test_screening_plan_imports_only_scipy_linalg(
    tmp_path: Path, runs: int, scipy_linalg: bool
) -> None:
    """pydoe's pbdesign needs scipy.linalg (12 and 20 runs); nothing else heavy is imported,
    and the 24-run design needs no scipy at all."""
    import yaml

    path = tmp_path / "screen.yaml"
    path.write_text(yaml.safe_dump(screening(11 if runs == 12 else 14, runs=runs)))
    loaded = _modules_after("plan", str(path))
    assert "trainbed.orchestrator.plan.screening" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY and m.split(".")[0] != "scipy")
    assert not heavy, heavy
    scipy_parts = {m.split(".")[1] for m in loaded if m.startswith("scipy.")}
    assert {p for p in scipy_parts if not p.startswith("_")} <= {"linalg", "version"}
    assert ("scipy.linalg" in loaded) is scipy_linalg
    assert "scipy.stats" not in loaded


def test_screening_matrix_refuses_repeated_rows() -> None:
    with pytest.raises(ValueError, match="5 to 23"):
        screening_matrix(3, None)
    assert screening_matrix(5, 12).shape == (12, 5)
