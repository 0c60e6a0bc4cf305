"""Fold-over: blocks in the design engine, plan --foldover, and augment's rewrite of a results
directory (nothing already recorded lost, relabelled or duplicated).

Expected structure (Montgomery, Design and Analysis of Experiments, 8th ed., section 8.6; Box,
Hunter & Hunter, 2nd ed., section 6.9): folding a 2^(4-1) with I = ABCD over on one factor gives
the full 2^4 in two blocks, with ABCD confounded with the blocks; the full fold-over of the
saturated 2^(7-4) resolution III design gives a 2^(7-3) of resolution IV, its blocks confounded
with the dropped odd-length words.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from trainbed.contract.errors import DesignError, UserError
from trainbed.contract.layout import BLOCK_COLUMN, ResultsLayout
from trainbed.orchestrator.augment import extend_campaign
from trainbed.orchestrator.cli import app
from trainbed.orchestrator.plan.design import build_design
from trainbed.orchestrator.plan.foldover import resolve_fold, with_foldover
from trainbed.orchestrator.plan.parse import load_campaign, parse_campaign
from trainbed.orchestrator.plan.trials import design_csv, plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

ROOT = Path(__file__).resolve().parents[2]
SEED001 = ROOT / "experiments" / "fmnist-2k1.yaml"
TARGETS = [
    ("epochs", [1, 2]),
    ("batch_size", [16, 32]),
    ("lr", [0.01, 0.1]),
    ("optimizer", ["sgd", "adam"]),
    ("model", ["MLP", "LeNet5"]),
    ("parallelism", [1, 2]),
    ("dataloader_workers", [0, 1]),
]


def campaign(factors: int, design: dict, name: str = "fold") -> dict:
    return {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name},
        "spec": {
            "design": design,
            "factors": [
                {"name": f"f{i}", "target": f"workload.{t}", "levels": lv}
                for i, (t, lv) in enumerate(TARGETS[:factors])
            ],
        },
    }


def _matrix(points: list[dict[str, int]]) -> np.ndarray:
    return np.array([list(p.values()) for p in points])


def test_fold_on_one_factor_of_a_half_fraction_gives_the_full_factorial_in_two_blocks() -> None:
    half = {"type": "fractional", "generators": ["D = ABC"], "replicates": 2, "seed": 5}
    before = build_design(parse_campaign(campaign(4, half)))
    after = build_design(parse_campaign(campaign(4, {**half, "foldover": ["f0"]})))
    assert after.blocks == 2 and after.folds == ["f0"]
    assert len(after.points) == 16 and len(after.runs) == 32
    assert after.defining_relation == [] and after.block_confounding == ["ABCD"]
    assert after.fraction == "2^4, 2 blocks"
    # block 1 is the design as it ran: same trials, same run order, same IDs
    first = [r for r in after.runs if r.block == 1]
    assert [(r.trial_id, r.run_order) for r in first] == [
        (r.trial_id, r.run_order) for r in before.runs
    ]
    second = [r for r in after.runs if r.block == 2]
    assert [r.run_order for r in second] == list(range(17, 33)), "the new block runs after"
    for run in second:  # the fold reverses A: D = -ABC in block 2
        c = run.coded
        assert c["D"] == -c["A"] * c["B"] * c["C"]
    assert not {r.trial_id for r in first} & {r.trial_id for r in second}


def test_full_foldover_of_resolution_three_gives_resolution_four() -> None:
    design = {"type": "fractional", "resolution": 3}
    before = build_design(parse_campaign(campaign(7, design)))
    after = build_design(parse_campaign(campaign(7, {**design, "foldover": ["full"]})))
    assert before.resolution == 3 and len(before.points) == 8
    assert after.resolution == 4 and len(after.points) == 16
    assert after.fraction == "2^(7-3), 2 blocks"
    assert all(len(w) % 2 == 0 for w in after.defining_relation)
    # the blocks confound the seven odd-length words the fold-over dropped
    assert sorted(after.block_confounding) == sorted(
        w for w in before.defining_relation if len(w) % 2 == 1
    )
    matrix = _matrix(after.points)
    assert {tuple(r) for r in matrix[8:]} == {tuple(-r) for r in matrix[:8]}


def test_second_fold_reverses_everything_before_it() -> None:
    design = {"type": "fractional", "resolution": 3, "foldover": ["full", "f0"]}
    after = build_design(parse_campaign(campaign(7, design)))
    assert after.blocks == 3 and len(after.points) == 32
    assert [sum(r.block == b for r in after.runs) for b in (1, 2, 3)] == [8, 8, 16]
    assert after.resolution == 4 and len(after.defining_relation) == 3


@pytest.mark.parametrize(
    ("design", "message"),
    [
        (  # E = BCD: A is in no word, so folding on A maps the fraction onto itself
            {"type": "fractional", "generators": ["E = BCD"], "foldover": ["f0"]},
            "folding on A gives back the same runs: A is in no word",
        ),
        (  # every word of I = ABCD has even length: reversing all factors changes no sign
            {"type": "fractional", "generators": ["D = ABC"], "foldover": ["full"]},
            "has an even number of the reversed factors; fold on one factor instead",
        ),
        (
            {"type": "fractional", "generators": ["D = ABC"], "foldover": ["f0", "f1"]},
            "already a full factorial",
        ),
    ],
)
def test_a_fold_that_adds_no_new_run_is_refused_naming_the_file(
    tmp_path: Path, design: dict, message: str
) -> None:
    path = tmp_path / "c.yaml"
    factors = 5 if "E = BCD" in design.get("generators", []) else 4
    path.write_text(yaml.safe_dump(campaign(factors, design)))
    with pytest.raises(DesignError) as caught:
        build_design(load_campaign(path))
    assert str(caught.value).startswith(f"{path}: spec.design.foldover[")
    assert message in str(caught.value)


def test_fold_names_are_checked_by_the_schema(tmp_path: Path) -> None:
    spec = campaign(4, {"type": "fractional", "generators": ["D = ABC"], "foldover": ["gpu"]})
    with pytest.raises(UserError, match=r"foldover\[0\]: 'gpu' is neither full nor a factor"):
        parse_campaign(spec)
    spec = campaign(3, {"type": "full", "foldover": ["f0"]})
    with pytest.raises(UserError, match="nothing to fold over"):
        parse_campaign(spec)
    assert resolve_fold("b", ["f0", "f1"]) == "f1"
    assert resolve_fold("full", ["f0"]) == "full"
    with pytest.raises(ValueError, match="A = f0, B = f1"):
        resolve_fold("Z", ["f0", "f1"])


def test_plan_foldover_shows_the_combined_design(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plan", str(SEED001), "--foldover", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["blocks"] == 2 and plan["foldover"] == ["cpu"]
    assert len(plan["runs"]) == 64 and {r["block"] for r in plan["runs"]} == {1, 2}
    assert plan["block_confounding"] == ["ABCD"] and plan["aliases"] == []
    table = CliRunner().invoke(app, ["plan", str(SEED001), "--foldover", "A"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "block 2: fold-over on cpu" in table.output and "ABCD" in table.output
    bad = CliRunner().invoke(app, ["plan", str(SEED001), "--foldover", "gpu"])
    assert bad.exit_code == 2 and "--foldover" in bad.output


def test_design_csv_has_a_block_column_only_with_blocks() -> None:
    plain = load_campaign(SEED001)
    assert BLOCK_COLUMN not in design_csv(plain, build_design(plain)).splitlines()[0]
    folded = with_foldover(plain, "cpu")
    header, *rows = design_csv(folded, build_design(folded)).splitlines()
    assert header.startswith("trial_id,run_order,replicate,block,cpu,cpu_coded")
    assert [row.split(",")[3] for row in rows] == ["1"] * 32 + ["2"] * 32


def _rows(root: Path) -> list[dict[str, str]]:
    with ResultsLayout(root).design_file.open() as handle:
        return list(csv.DictReader(handle))


def _finished(tmp_path: Path, design: dict) -> Path:
    """A results directory whose every trial has a result.json, as `trainbed run` leaves it."""
    spec = campaign(4, design)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(spec))
    c = load_campaign(path)
    planned = plan_campaign(c)
    results = ResultsDir.for_campaign(tmp_path / "out", c)
    # campaign.yaml as run writes it, minus the torch version annotation (not needed here)
    results.layout.root.mkdir(parents=True)
    results.layout.campaign_file.write_text(
        yaml.safe_dump(c.model_dump(mode="json", exclude_none=True, exclude={"status"}))
    )
    results.layout.design_file.write_text(design_csv(c, planned.design))
    for trial in planned.trials:
        results.write_trial(trial)
        results.layout.trial(trial.trial_id).result_file.write_text('{"status": "succeeded"}')
    return results.root


def test_augment_rewrites_the_results_directory_keeping_every_recorded_trial(
    tmp_path: Path,
) -> None:
    root = _finished(tmp_path, {"type": "fractional", "generators": ["D = ABC"], "seed": 2})
    old_rows = _rows(root)
    done = extend_campaign(root, "B")
    assert done.design.folds == ["f1"] and len(done.new_trials) == 8
    rows = _rows(root)
    assert len(rows) == 16 and len({r["trial_id"] for r in rows}) == 16
    for old, new in zip(old_rows, rows[:8], strict=True):
        assert new == {**old, BLOCK_COLUMN: "1"}, "block 1 is unchanged"
    assert {r[BLOCK_COLUMN] for r in rows[8:]} == {"2"}
    new_ids = {t.trial_id for t in done.new_trials}
    assert new_ids == {r["trial_id"] for r in rows[8:]}
    assert not any((root / "trials" / i).exists() for i in new_ids), "nothing run yet"
    spec = yaml.safe_load(ResultsLayout(root).campaign_file.read_text())
    assert spec["spec"]["design"]["foldover"] == ["f1"]
    seeds = json.loads(spec["metadata"]["annotations"]["trainbed.io/seeds"])
    assert set(seeds["trials"]) == {r["trial_id"] for r in rows}
    # `trainbed run campaign.yaml --resume` finds exactly the new block missing
    again = plan_campaign(load_campaign(ResultsLayout(root).campaign_file))
    results = ResultsDir(root)
    assert {t.trial_id for t in again.trials if not results.has_result(t.trial_id)} == new_ids


def test_augment_refuses_an_unfinished_or_unfoldable_campaign(tmp_path: Path) -> None:
    root = _finished(tmp_path, {"type": "fractional", "generators": ["D = ABC"]})
    first = sorted((root / "trials").iterdir())[0]
    (first / "result.json").unlink()
    with pytest.raises(UserError, match="1 of 8 trials have no result yet"):
        extend_campaign(root, "full")
    full = _finished(tmp_path / "full", {"type": "full"})
    with pytest.raises(UserError, match="a full design aliases nothing"):
        extend_campaign(full, "f0")
    with pytest.raises(UserError, match="not a results directory"):
        extend_campaign(tmp_path, "f0")
    result = CliRunner().invoke(app, ["augment", str(full), "--foldover", "f0"])
    assert result.exit_code == 2 and "aliases nothing" in result.output


def test_augment_cli_no_run(tmp_path: Path) -> None:
    root = _finished(tmp_path, {"type": "fractional", "generators": ["D = ABC"]})
    result = CliRunner().invoke(
        app, ["augment", str(root), "--foldover", "A", "--no-run"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "block 2 is a fold-over on f0, 8 new trials" in text
    assert "the blocks confound ABCD" in text and "--resume" in text


def test_resuming_an_augmented_directory_from_the_original_file_says_how(tmp_path: Path) -> None:
    root = _finished(tmp_path, {"type": "fractional", "generators": ["D = ABC"]})
    extend_campaign(root, "f2")
    original = load_campaign(tmp_path / "c.yaml")
    planned = plan_campaign(original)
    with pytest.raises(UserError, match="was extended by trainbed augment") as caught:
        ResultsDir(root).initialise(original, planned.design, planned.trials, resume=True)
    assert f"trainbed run {root / 'campaign.yaml'} --out {root.parent} --resume" in str(
        caught.value
    )
