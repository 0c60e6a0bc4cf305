"""The design engine: run counts, structure computed from the matrix, determinism."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainbed.orchestrator.cli import app
from trainbed.orchestrator.plan.aliasing import (
    Word,
    alias_groups,
    defining_relation,
    generators_from_matrix,
    mask_of,
    resolution,
)
from trainbed.orchestrator.plan.design import build_design
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import design_csv, trial_spec

ROOT = Path(__file__).resolve().parents[2]
SEED001 = ROOT / "experiments" / "fmnist-2k1.yaml"


def campaign(factors: int, design: dict, levels: list | None = None, name: str = "c") -> dict:
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name},
        "spec": {
            "design": design,
            "factors": [
                {"name": f"f{i}", "target": f"workload.{t}", "levels": levels or lv}
                for i, (t, lv) in enumerate(list(_TARGETS.items())[:factors])
            ],
        },
    }


# Enough distinct two-level targets for up to 10 factors.
_TARGETS = {
    "epochs": [1, 2],
    "batch_size": [16, 32],
    "lr": [0.01, 0.1],
    "optimizer": ["sgd", "adam"],
    "model": ["MLP", "LeNet5"],
    "parallelism": [1, 2],
    "dataloader_workers": [0, 1],
    "batch_norm": [False, True],
    "seed": [1, 2],
    "validation_fraction": [0.1, 0.2],
}


def test_seed001_plan_json() -> None:
    result = CliRunner().invoke(app, ["plan", str(SEED001), "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert len(plan["runs"]) == 32
    assert plan["resolution"] == 4
    assert plan["defining_relation"] == ["ABCD"]
    groups = {frozenset(g) for g in plan["aliases"]}
    assert groups == {frozenset({"AB", "CD"}), frozenset({"AC", "BD"}), frozenset({"AD", "BC"})}
    assert plan["factors"] == {"A": "cpu", "B": "memory", "C": "network", "D": "epochs"}
    assert [r["run_order"] for r in plan["runs"]] == list(range(1, 33))
    assert sorted({r["replicate"] for r in plan["runs"]}) == [1, 2, 3, 4]
    for run in plan["runs"]:
        coded = run["coded"]
        assert coded["D"] == coded["A"] * coded["B"] * coded["C"]
        assert run["levels"]["cpu"] == ("750m" if coded["A"] < 0 else "1500m")


@pytest.mark.parametrize(
    ("factors", "res", "runs"),
    [(7, 3, 8), (5, 5, 16), (4, 4, 8), (5, 3, 8), (6, 4, 16), (8, 4, 16), (5, 4, 16), (3, 3, 4)],
)
def test_resolution_gives_smallest_design(factors: int, res: int, runs: int) -> None:
    spec = campaign(factors, {"type": "fractional", "resolution": res})
    design = build_design(parse_campaign(spec))
    assert len(design.points) == runs
    assert design.resolution is not None and design.resolution >= res


def test_resolution_picks_least_aberration_for_six_factors() -> None:
    # 2^(6-2) IV in 16 runs: I = ABCE = BCDF = ADEF, three words of length 4 and none shorter.
    design = build_design(parse_campaign(campaign(6, {"type": "fractional", "resolution": 4})))
    assert len(design.points) == 16
    assert design.word_length_pattern == [0, 0, 0, 3, 0, 0]
    # 2^(5-1) at resolution V is the half fraction I = ABCDE, not a resolution-IV word.
    design = build_design(parse_campaign(campaign(5, {"type": "fractional", "resolution": 5})))
    assert design.word_length_pattern == [0, 0, 0, 0, 1]


def test_same_seed_same_order_other_seed_other_order() -> None:
    def ids(seed: int) -> list[str]:
        spec = campaign(
            4, {"type": "fractional", "generators": ["D = ABC"], "replicates": 3, "seed": seed}
        )
        return [r.trial_id for r in build_design(parse_campaign(spec)).runs]

    assert ids(1) == ids(1)
    assert ids(1) != ids(2)
    assert sorted(ids(1)) == sorted(ids(2)), "IDs depend on the point and replicate, not the order"


def test_unrandomised_order_is_standard_order() -> None:
    spec = campaign(3, {"type": "full", "randomize": False, "replicates": 2})
    runs = build_design(parse_campaign(spec)).runs
    coded = [tuple(r.coded.values()) for r in runs[:8]]
    assert coded == [(a, b, c) for c in (-1, 1) for b in (-1, 1) for a in (-1, 1)]
    assert [r.replicate for r in runs] == [1] * 8 + [2] * 8


def test_trial_ids_stable_and_keyed_by_levels_not_rows() -> None:
    one = build_design(parse_campaign(campaign(3, {"type": "full"})))
    two = build_design(parse_campaign(campaign(3, {"type": "full", "seed": 99})))
    by_point = {tuple(r.coded.values()): r.trial_id for r in one.runs}
    assert by_point == {tuple(r.coded.values()): r.trial_id for r in two.runs}
    assert all(i.startswith("t") and len(i) == 11 for i in by_point.values())


def test_multilevel_full_factorial() -> None:
    spec = campaign(2, {"type": "full", "replicates": 2})
    spec["spec"]["factors"][0]["levels"] = [1, 2, 3]
    design = build_design(parse_campaign(spec))
    assert len(design.points) == 6 and len(design.runs) == 12
    assert {p["A"] for p in design.points} == {0, 1, 2}
    assert {p["B"] for p in design.points} == {-1, 1}
    assert design.resolution is None and design.aliases == []


def test_negative_generator() -> None:
    spec = campaign(4, {"type": "fractional", "generators": ["D = -ABC"]})
    design = build_design(parse_campaign(spec))
    assert design.defining_relation == ["-ABCD"]
    for p in design.points:
        assert p["D"] == -p["A"] * p["B"] * p["C"]


def test_generator_over_non_leading_base_factors() -> None:
    spec = campaign(5, {"type": "fractional", "generators": ["B = ACDE"]})
    design = build_design(parse_campaign(spec))
    assert design.defining_relation == ["ABCDE"] and design.resolution == 5
    for p in design.points:
        assert p["B"] == p["A"] * p["C"] * p["D"] * p["E"]


def test_seven_factor_resolution_three_aliases_main_effects_with_two_factor_interactions() -> None:
    design = build_design(parse_campaign(campaign(7, {"type": "fractional", "resolution": 3})))
    assert design.resolution == 3
    assert len(design.defining_relation) == 15
    assert any("A" in g and len(g) > 1 for g in design.aliases)
    # every main effect's chain holds three two-factor interactions in the saturated 2^(7-4)
    assert all(
        sum(len(w.lstrip("-")) == 2 for w in design.alias_structure[x]) == 3 for x in "ABCDEFG"
    )


def test_structure_from_matrix_matches_generators() -> None:
    rng = np.random.default_rng(0)
    base = np.array(list(itertools.product([-1, 1], repeat=4)))
    e = base[:, 0] * base[:, 1] * base[:, 2]  # E = ABC
    f = -base[:, 1] * base[:, 2] * base[:, 3]  # F = -BCD
    matrix = np.column_stack([base, e, f])[rng.permutation(16)]
    gens = generators_from_matrix(matrix.astype(float))
    relation = defining_relation([g.defining_word() for g in gens])
    names = sorted(w.name() for w in relation)
    assert names == sorted(["ABCE", "-BCDF", "-ADEF"])
    assert resolution(relation) == 4


def test_alias_groups_for_half_fraction() -> None:
    relation = defining_relation([Word(mask_of("ABCD"))])
    assert alias_groups(4, relation) == [["AB", "CD"], ["AC", "BD"], ["AD", "BC"]]


def test_design_csv_columns_and_trial_spec() -> None:
    from trainbed.orchestrator.plan.parse import load_campaign

    c = load_campaign(SEED001)
    design = build_design(c)
    lines = design_csv(c, design).splitlines()
    assert lines[0] == (
        "trial_id,run_order,replicate,cpu,cpu_coded,memory,memory_coded,"
        "network,network_coded,epochs,epochs_coded"
    )
    assert len(lines) == 33
    run = design.runs[0]
    spec = trial_spec(c, run)
    assert spec.resources.cpu == run.levels["cpu"]
    assert spec.workload.model == run.levels["network"]
    assert spec.workload.epochs == run.levels["epochs"]
    seeds = {trial_spec(c, r).seed for r in design.runs}
    assert len(seeds) == 32, "every trial, replicates included, gets its own seed"


def test_factor_letters_skip_i() -> None:
    """The ninth factor is J, as in FrF2: I is the identity of every defining relation."""
    spec = campaign(9, {"type": "fractional", "generators": ["J = ABCDEFGH"]})
    design = build_design(parse_campaign(spec))
    assert list(design.factors) == list("ABCDEFGHJ")
    assert design.defining_relation == ["ABCDEFGHJ"] and design.resolution == 9
    assert all(p["J"] == np.prod([p[x] for x in "ABCDEFGH"]) for p in design.points)
    assert "AJ" in design.alias_structure and not any("I" in k for k in design.alias_structure)
    resolved = build_design(parse_campaign(campaign(10, {"type": "fractional", "resolution": 4})))
    assert list(resolved.factors) == list("ABCDEFGHJK")
    assert all("I" not in g for g in resolved.generators + resolved.defining_relation)


def test_design_errors_name_the_file(tmp_path: Path) -> None:
    import yaml

    from trainbed.contract.errors import DesignError
    from trainbed.orchestrator.plan.parse import load_campaign

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(campaign(4, {"type": "fractional", "resolution": 5})))
    with pytest.raises(DesignError) as caught:
        build_design(load_campaign(path))
    assert caught.value.source == str(path)
    assert str(caught.value).startswith(f"{path}: spec.design.resolution: resolution 5 is")
    result = CliRunner().invoke(app, ["plan", str(path)])
    assert result.exit_code == 2
    assert f"{path}: spec.design.resolution" in " ".join(result.output.split())
    # a campaign that came from no file (the controller's) names no file
    with pytest.raises(DesignError) as caught:
        build_design(parse_campaign(campaign(4, {"type": "fractional", "resolution": 5})))
    assert str(caught.value).startswith("spec.design.resolution:")


@pytest.mark.parametrize(
    ("generators", "message"),
    [
        (["C = AB", "D = BC"], "'D = BC' uses C, which is itself generated"),
        (["C = AB", "D = AB", "E = CD"], "'E = CD' uses C and D, which are themselves generated"),
    ],
)
def test_generated_factor_in_a_generator_message(generators: list[str], message: str) -> None:
    from trainbed.contract.errors import DesignError

    spec = campaign(5, {"type": "fractional", "generators": generators})
    with pytest.raises(DesignError, match=message):
        build_design(parse_campaign(spec))


@pytest.mark.parametrize(
    ("multi", "message"),
    [([1], "f1 has more"), ([0, 2], "f0 and f2 have more"), ([0, 1, 2], "f0, f1 and f2 have")],
)
def test_multilevel_factors_in_a_fraction_message(multi: list[int], message: str) -> None:
    from trainbed.contract.errors import SpecError

    spec = campaign(4, {"type": "fractional", "generators": ["D = ABC"]})
    for i in multi:
        spec["spec"]["factors"][i]["levels"] = [*spec["spec"]["factors"][i]["levels"], 3]
    with pytest.raises(SpecError, match=f"two-level factors; {message}"):
        parse_campaign(spec)
