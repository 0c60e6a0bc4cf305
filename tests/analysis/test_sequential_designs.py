"""The analysis of fold-over blocks and screening designs, checked on planted effects.

Synthetic results directories (``analysis.synthetic``) carry known q's, a block shift and normal
noise; the fits must find the truth inside their 95% intervals, and the aliased sums where the
design aliases. The fold-over cases follow Montgomery (8th ed., section 8.6): folding a
fraction over on one factor frees that factor's main effect and two-factor interactions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trainbed.analysis.models.anova import Fit, fit_response
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.design_notes import blocks_text, dealiased_effects, screening_text
from trainbed.orchestrator.plan.screening import screening_matrix

FACTORS = [(n, [-1, 1]) for n in ("A", "B", "C", "D")]


def _q(fit: Fit, term: str) -> pd.Series:
    rows = fit.effects[fit.effects["term"] == term]
    assert len(rows) == 1, (term, list(fit.effects["term"]))
    return rows.iloc[0]


def _covers(fit: Fit, term: str, truth: float) -> None:
    row = _q(fit, term)
    assert row["q_ci95_low"] <= truth <= row["q_ci95_high"], (term, truth, row.to_dict())
    assert abs(row["q"] - truth) < 0.25, (term, truth, row["q"])


def _fit(tmp_path: Path, spec: SyntheticCampaign, **kwargs: bool) -> tuple[Fit, object]:
    results = load(write_results(tmp_path, spec))
    return fit_response(results.trials, results.factors, "time", **kwargs), results


def _half_fraction(**kwargs: object) -> SyntheticCampaign:
    """2^(4-1), I = ABCD: AB = CD, AC = BD, AD = BC. Planted: A, AB, CD, AC, and a block shift."""
    return SyntheticCampaign(
        name="half",
        factors=FACTORS,
        generators={3: [0, 1, 2]},
        replicates=3,
        noise=0.3,
        seed=11,
        effects={("A",): 3.0, ("A", "B"): 2.0, ("C", "D"): -1.0, ("A", "C"): 1.5},
        write_tb=False,
        iterations=0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_block_one_alone_estimates_the_aliased_sums(tmp_path: Path) -> None:
    fit, _ = _fit(tmp_path, _half_fraction())
    _covers(fit, "A:B", 2.0 - 1.0)  # AB + CD
    _covers(fit, "A:C", 1.5)  # AC + BD, BD = 0
    assert _q(fit, "A:B")["aliases"] == "C:D"
    assert "C:D" not in set(fit.effects["term"])


def test_fold_on_a_separates_as_two_factor_interactions(tmp_path: Path) -> None:
    spec = _half_fraction(foldover=["A"], block_effects={2: 4.0})
    fit, results = _fit(tmp_path, spec)
    assert fit.n == 48
    # the planted effects, each on its own now
    for term, truth in {
        "A": 3.0,
        "A:B": 2.0,
        "C:D": -1.0,
        "A:C": 1.5,
        "B:D": 0.0,
        "A:D": 0.0,
        "B:C": 0.0,
        "B": 0.0,
    }.items():
        _covers(fit, term, truth)
        assert _q(fit, term)["aliases"] == "", term
    # the block term takes the shift (q = half the difference) and the word the fold dropped
    _covers(fit, "block", 2.0)
    assert _q(fit, "block")["aliases"] == "A:B:C:D"
    assert "A:B:C:D" not in set(fit.effects["term"])
    assert any("A:B:C:D not fitted: confounded with the blocks" in n for n in fit.notes)
    # what the report says
    text = blocks_text(results.campaign, results.trials, results.factor_names)
    assert "block 2: fold-over on A" in text and "blocks (not estimable): A:B:C:D" in text
    assert "- A:B: was aliased with C:D" in text
    freed = dealiased_effects(
        results.campaign, results.trials, results.factor_names, fit.effects
    ).set_index("term")
    assert set(freed.index) == {"A:B", "A:C", "A:D", "B:C", "B:D", "C:D"}
    assert freed.loc["C:D", "was_aliased_with"] == "A:B"
    assert freed.loc["A:B", "q"] == pytest.approx(_q(fit, "A:B")["q"])


def test_fold_on_a_frees_a_main_effect_of_resolution_three(tmp_path: Path) -> None:
    """2^(5-2) with D = AB, E = AC: A = BD = CE. Folded on A, A and its 2FIs are clear, and
    B:D stays aliased with C:E (the word BCDE survives)."""
    factors = [(n, [-1, 1]) for n in ("A", "B", "C", "D", "E")]
    common = dict(
        factors=factors,
        generators={3: [0, 1], 4: [0, 2]},
        replicates=3,
        noise=0.3,
        seed=4,
        effects={("A",): 2.0, ("B", "D"): 1.5, ("E",): -1.0},
        write_tb=False,
        iterations=0,
    )
    alone, _ = _fit(tmp_path / "one", SyntheticCampaign(name="r3", **common))  # type: ignore[arg-type]
    _covers(alone, "A", 2.0 + 1.5)
    folded, results = _fit(
        tmp_path / "two",
        SyntheticCampaign(name="r3", foldover=["A"], **common),  # type: ignore[arg-type]
    )
    _covers(folded, "A", 2.0)
    _covers(folded, "E", -1.0)
    _covers(folded, "B:D", 1.5)
    assert _q(folded, "B:D")["aliases"] == "C:E"
    assert _q(folded, "A")["aliases"] == "A:B:C:D:E"  # no main effect or 2FI any more
    freed = dealiased_effects(
        results.campaign, results.trials, results.factor_names, folded.effects
    )
    assert {"A", "A:B", "A:C", "B:D"} <= set(freed["term"])


def test_screening_fits_main_effects_only(tmp_path: Path) -> None:
    """A 12-run Plackett-Burman design, 11 factors, two replicates: only the main effects are
    fitted, found where planted, each labelled with its partial aliasing."""
    names = [f"x{i}" for i in range(11)]
    matrix = screening_matrix(11, None)
    truth = {"x0": 3.0, "x3": -2.0, "x7": 1.0}
    spec = SyntheticCampaign(
        name="pb",
        factors=[(n, [-1, 1]) for n in names],
        matrix=matrix,
        replicates=2,
        noise=0.3,
        seed=3,
        effects={(n,): q for n, q in truth.items()},
        write_tb=False,
        iterations=0,
    )
    fit, results = _fit(tmp_path, spec, main_effects_only=True)
    terms = [t for t in fit.effects["term"] if t not in ("mean", "Error")]
    assert terms == names
    for name in names:
        _covers(fit, name, truth.get(name, 0.0))
        assert _q(fit, name)["aliases"] == "partially aliased with 45 2FIs (|r| = 0.33)"
    assert fit.df_resid == 24 - 12
    assert any(n.startswith("main effects only") for n in fit.notes)
    assert results.campaign.spec.design.type == "screening"
    assert "the model fits main effects only" in screening_text(
        results.campaign, results.trials, names
    )


def test_screening_partial_aliasing_biases_by_the_correlation(tmp_path: Path) -> None:
    """An interaction planted in a screening design leaks into each main effect by that main
    effect's correlation with it (+-1/3): what the partial aliasing note warns of."""
    names = [f"x{i}" for i in range(11)]
    matrix = screening_matrix(11, None)
    spec = SyntheticCampaign(
        name="pb",
        factors=[(n, [-1, 1]) for n in names],
        matrix=matrix,
        replicates=2,
        noise=0.05,
        seed=8,
        effects={("x1", "x2"): 3.0},
        write_tb=False,
        iterations=0,
    )
    fit, _ = _fit(tmp_path, spec, main_effects_only=True)
    interaction = matrix[:, 1] * matrix[:, 2]
    for i, name in enumerate(names):
        r = float(np.mean(matrix[:, i] * interaction))
        assert _q(fit, name)["q"] == pytest.approx(3.0 * r, abs=0.1), name
    assert abs(_q(fit, "x0")["q"]) == pytest.approx(1.0, abs=0.1)  # 3 * 1/3


def test_a_damaged_block_column_is_named(tmp_path: Path) -> None:
    from trainbed.contract.errors import ResultsError

    root = write_results(tmp_path, _half_fraction(foldover=["A"]))
    design = pd.read_csv(root / "design.csv")
    assert sorted(design["block"].unique()) == [1, 2]
    design["block"] = design["block"].astype(str)
    design.loc[0, "block"] = "x"
    design.to_csv(root / "design.csv", index=False)
    with pytest.raises(ResultsError, match=r"design.csv: column block holds a non-block value"):
        load(root)
