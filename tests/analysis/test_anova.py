"""The analysis against known truth: synthetic 2^(4-1) x 4 campaigns with planted effects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from trainbed.analysis import load
from trainbed.analysis.models.aliases import estimable_terms
from trainbed.analysis.models.anova import fit_response, lenth_pse
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results

TRUTH = {
    ("cpu",): -5.0,
    ("memory",): 0.5,
    ("network",): 3.0,
    ("epochs",): 8.0,
    ("cpu", "memory"): 1.5,
}


@pytest.fixture(scope="module")
def seed001(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_results(
        tmp_path_factory.mktemp("r"), SyntheticCampaign(effects=TRUTH, noise=1.0, seed=11)
    )


def test_recovered_effects_fall_within_their_intervals(seed001: Path) -> None:
    fit = fit_response(load(seed001).trials, load(seed001).factors, "time")
    effects = fit.effects.set_index("term")
    for term, q in TRUTH.items():
        name = ":".join(term)
        row = effects.loc[name]
        assert row["q_ci95_low"] <= q <= row["q_ci95_high"], (name, q, row.to_dict())
    # an effect that is truly zero is not claimed
    zero = effects.loc["cpu:epochs"]
    assert zero["q_ci95_low"] <= 0 <= zero["q_ci95_high"]


def test_allocation_of_variation_sums_to_100(seed001: Path) -> None:
    fit = fit_response(load(seed001).trials, load(seed001).factors, "time")
    assert fit.effects["variation_pct"].sum() == pytest.approx(100.0, abs=1e-6)
    assert fit.balanced


def test_sum_of_squares_is_n_q_squared_and_matches_statsmodels(seed001: Path) -> None:
    results = load(seed001)
    fit = fit_response(results.trials, results.factors, "time")
    n = len(results.trials)
    effects = fit.effects.set_index("term")
    anova = fit.anova.set_index("term")
    for term in ["cpu", "memory", "network", "epochs", "cpu:memory", "cpu:network", "cpu:epochs"]:
        assert anova.loc[term, "sum_sq"] == pytest.approx(n * effects.loc[term, "q"] ** 2)
    # statsmodels on the same data with categorical Sum contrasts in explicit level order
    frame = results.trials.copy()
    for letter, name in zip("abcd", ["cpu", "memory", "network", "epochs"], strict=True):
        frame[f"f{letter}"] = frame[f"{name}_coded"]
    term = {x: f"C(f{x}, Sum, levels=[-1, 1])" for x in "abcd"}
    formula = (
        "time ~ " + " + ".join(term[x] for x in "abcd") + f" + {term['a']}:{term['b']}"
        f" + {term['a']}:{term['c']} + {term['a']}:{term['d']}"
    )
    model = smf.ols(formula, data=frame).fit()
    reference = anova_lm(model, typ=3)
    ours = fit.anova.set_index("term")["sum_sq"].to_numpy()
    theirs = reference.drop(index="Intercept")["sum_sq"].to_numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-8)


def test_sign_follows_the_written_level_order_not_the_alphabet(tmp_path: Path) -> None:
    """'FashionMNISTResNet' sorts after 'FashionMNISTCNN', but 'zeta' < 'alpha' is written
    low-first here: the effect's sign must follow the design, not alphabetical order."""
    spec = SyntheticCampaign(
        effects={("network",): 4.0},
        noise=0.1,
        seed=3,
        factors=[
            ("cpu", ["750m", "1500m"]),
            ("memory", ["1.5Gi", "3Gi"]),
            ("network", ["zeta", "alpha"]),
            ("epochs", [5, 10]),
        ],
    )
    root = write_results(tmp_path, spec)
    fit = fit_response(load(root).trials, load(root).factors, "time")
    q = fit.effects.set_index("term").loc["network", "q"]
    assert q == pytest.approx(4.0, abs=0.2)


def test_seed001_structure_has_aliased_rows_and_24_error_df(seed001: Path) -> None:
    fit = fit_response(load(seed001).trials, load(seed001).factors, "time")
    assert list(fit.anova["term"]) == [
        "cpu",
        "memory",
        "network",
        "epochs",
        "cpu:memory",
        "cpu:network",
        "cpu:epochs",
        "Residual",
    ]
    assert fit.anova.set_index("term").loc["Residual", "df"] == 24
    aliases = fit.effects.set_index("term")["aliases"].to_dict()
    assert aliases["cpu:memory"] == "network:epochs"
    assert aliases["cpu:network"] == "memory:epochs"
    assert aliases["cpu:epochs"] == "memory:network"
    assert aliases["cpu"] == "memory:network:epochs"


def test_estimable_terms_for_a_half_fraction() -> None:
    points = SyntheticCampaign().points()
    terms = estimable_terms(points, ["A", "B", "C", "D"])
    assert [t.name for t in terms] == ["A", "B", "C", "D", "A:B", "A:C", "A:D"]
    assert [t.alias_text for t in terms[4:]] == ["C:D", "B:D", "B:C"]


def test_unreplicated_design_uses_lenth(tmp_path: Path) -> None:
    root = write_results(
        tmp_path, SyntheticCampaign(effects=TRUTH, noise=0.5, replicates=1, seed=5)
    )
    fit = fit_response(load(root).trials, load(root).factors, "time")
    assert fit.df_resid == 0 and fit.lenth_pse is not None
    assert fit.anova["F"].isna().all()
    big = fit.effects.set_index("term").loc["epochs"]
    assert big["q_ci95_low"] > 0, "an 8-unit effect stands out even without replicates"


def test_lenth_pse_on_a_known_set() -> None:
    # Lenth (1989): s0 = 1.5 * median|c|; PSE = 1.5 * median of |c| < 2.5 s0
    effects = np.array([10.0, -1.0, 0.5, 0.8, -0.3, 0.2, 12.0])
    s0 = 1.5 * np.median(np.abs(effects))
    kept = np.abs(effects)[np.abs(effects) < 2.5 * s0]
    assert lenth_pse(effects) == pytest.approx(1.5 * np.median(kept))


def test_log_suggestion_and_transform(tmp_path: Path) -> None:
    spec = SyntheticCampaign(effects={("epochs",): 45.0}, mean=50.0, noise=0.5, seed=2)
    root = write_results(tmp_path, spec)
    results = load(root)
    plain = fit_response(results.trials, results.factors, "time")
    assert plain.suggestion and "log" in plain.suggestion
    logged = fit_response(results.trials, results.factors, "time", log=True)
    assert logged.transform == "log" and logged.suggestion is None


def test_frames_are_loaded(seed001: Path) -> None:
    results = load(seed001)
    assert len(results.trials) == 32 and (results.trials["status"] == "succeeded").all()
    assert {"trial_id", "epoch", "accuracy per epoch"} <= set(results.epochs.columns)
    assert len(results.iterations) == 32 * 20
    assert isinstance(results.trials, pd.DataFrame)
