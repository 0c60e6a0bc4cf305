"""Sequential experiments end to end, with real (one-rank) training on the synthetic data set:
a Plackett-Burman screening campaign that plans, runs and analyses with main effects only, and
a fraction that ``trainbed augment`` folds over, running only the new block."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tests.e2e.helpers import results, run_cli, write_campaign
from trainbed.analysis.models.anova import fit_response
from trainbed.analysis.reading.load import load

# twelve and eight real trials, and one full report, on a 2-core machine that others share:
# generous bounds, so a busy machine is slow rather than a failure
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
SLOW = 1800.0

#: eleven two-level factors that keep a trial cheap: one rank, one or two small epochs
CHEAP = [
    ("epochs", "workload.epochs", [1, 2]),
    ("batch_size", "workload.batch_size", [128, 256]),
    ("lr", "workload.lr", [0.01, 0.05]),
    ("optimizer", "workload.optimizer", ["sgd", "adam"]),
    ("batch_norm", "workload.batch_norm", [False, True]),
    ("seed", "workload.seed", [1, 2]),
    ("validation_fraction", "workload.validation_fraction", [0.1, 0.2]),
    ("dataloader_workers", "workload.dataloader_workers", [0, 1]),
    ("sync_period", "workload.sync_period", [-1, 1]),
    ("cpu", "resources.cpu", ["1", "2"]),
    ("memory", "resources.memory", ["1536Mi", "2Gi"]),
]
WORKLOAD = {"dataset": "synthetic", "model": "MLP", "epochs": 1, "parallelism": 1}


def _factors(count: int) -> list[dict]:
    return [{"name": n, "target": t, "levels": lv} for n, t, lv in CHEAP[:count]]


def _rows(root: Path) -> list[dict[str, str]]:
    with (root / "design.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_plackett_burman_twelve_runs_eleven_factors(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "pb.yaml",
        "pb12",
        _factors(11),
        design={"type": "screening", "replicates": 1, "seed": 3},
        workload=WORKLOAD,
        timeout_s=SLOW,
    )
    plan = json.loads(run_cli("plan", str(spec), "--json").stdout)
    assert plan["fraction"] == "Plackett-Burman 12-run" and len(plan["runs"]) == 12
    assert all(len(r) == 45 for r in plan["partial_aliases"].values())
    out = tmp_path / "out"
    run_cli("run", str(spec), "--out", str(out), "--parallel", "1", timeout=SLOW)
    root = out / "pb12"
    rows = _rows(root)
    assert len(rows) == 12 and "block" not in rows[0]
    found = results(root)
    assert sorted(found) == sorted(r["trial_id"] for r in rows)
    assert all(r["status"] == "succeeded" for r in found.values()), found
    report = (root / "report" / "index.md").read_text()
    assert "the model fits main effects only" in report
    with (root / "report" / "effects_time.csv").open() as handle:
        effects = list(csv.DictReader(handle))
    terms = [e["term"] for e in effects]
    assert terms == ["mean", *(n for n, _, _ in CHEAP), "Error"], "main effects only"
    assert all("partially aliased with 45 2FIs" in e["aliases"] for e in effects[1:-1])


def test_augment_runs_only_the_fold_over_block(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "half.yaml",
        "half",
        _factors(3),
        design={"type": "fractional", "generators": ["C = AB"], "replicates": 1, "seed": 2},
        workload=WORKLOAD,
        timeout_s=SLOW,
    )
    out = tmp_path / "out"
    run_cli("run", str(spec), "--out", str(out), "--no-analyze", timeout=SLOW)
    root = out / "half"
    before = {
        p.parent.name: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in root.glob("trials/*/result.json")
    }
    assert len(before) == 4
    first_rows = _rows(root)

    proc = run_cli("augment", str(root), "--foldover", "A", "--no-analyze", timeout=SLOW)
    assert "block 2 is a fold-over on epochs, 4 new trials" in " ".join(proc.stdout.split())
    rows = _rows(root)
    assert len(rows) == 8 and len({r["trial_id"] for r in rows}) == 8
    assert [{k: v for k, v in r.items() if k != "block"} for r in rows[:4]] == first_rows
    assert [r["block"] for r in rows] == ["1"] * 4 + ["2"] * 4
    after = {p.parent.name: p for p in root.glob("trials/*/result.json")}
    assert set(after) == {r["trial_id"] for r in rows}
    for trial_id, (content, mtime) in before.items():  # recorded trials were not rerun
        assert after[trial_id].read_bytes() == content
        assert after[trial_id].stat().st_mtime_ns == mtime
    assert not (root / "attempts").exists()
    assert all(json.loads(after[r["trial_id"]].read_text())["status"] == "succeeded" for r in rows)
    # the combined analysis (the report's figures are left out here: the synthetic tests in
    # tests/analysis/test_sequential_designs.py check the report's text on planted effects)
    loaded = load(root)
    assert loaded.trials["block"].tolist() == [1] * 4 + [2] * 4
    fit = fit_response(loaded.trials, loaded.factors, "time")
    terms = list(fit.effects["term"])
    assert terms[:2] == ["mean", "block"] and "epochs:batch_size" in terms
    assert fit.effects.set_index("term").loc["block", "aliases"] == "epochs:batch_size:lr"
    assert fit.df_resid == 0, "2^3 in two blocks: 8 runs, 1 + 1 + 6 terms"
    # the combined design is the full 2^3: folding again on A has nothing to separate
    again = run_cli("augment", str(root), "--foldover", "A", check=False)
    assert again.returncode == 2 and "already a full factorial" in again.stderr
