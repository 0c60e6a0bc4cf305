"""The replicate advisor against the truth: on synthetic campaigns with a known error variance,
the replicates it recommends give effects' 95% intervals within the target in >= 90% of
simulated campaigns (the issue's must-show), and its arithmetic checks out on its own."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from trainbed.analysis.models.advisor import (
    MAX_REPLICATES,
    Target,
    advise,
    parse_target,
    per_replicate_c,
    required_replicates,
)
from trainbed.analysis.models.anova import fit_response
from trainbed.analysis.models.design_matrix import build
from trainbed.analysis.reading.load import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.contract.errors import UserError

EFFECTS = {("cpu",): -8.0, ("memory",): 1.5, ("network",): 4.0, ("cpu", "network"): 1.0}
SIGMA = 2.0
MEAN = 100.0
TARGET = Target(0.01, relative=True)  # +-1% of the mean: about +-1 s


def _campaign(points: np.ndarray, names: list[str], replicates: int, y: np.ndarray):
    rows = []
    for i, point in enumerate(np.tile(points, (replicates, 1))):
        row = {"trial_id": f"t{i}", "run_order": i + 1, "status": "succeeded", "time": y[i]}
        for name, level in zip(names, point, strict=True):
            row[name], row[f"{name}_coded"] = int(level), int(level)
        rows.append(row)
    return pd.DataFrame(rows)


def _truth(points: np.ndarray, names: list[str]) -> np.ndarray:
    x = [dict(zip(names, p, strict=True)) for p in points]
    return np.array(
        [MEAN + sum(q * np.prod([r[f] for f in t]) for t, q in EFFECTS.items()) for r in x]
    )


def _widest_half_widths(
    points: np.ndarray, names: list[str], factors: list[dict], r: int, draws: np.ndarray
) -> np.ndarray:
    """The widest effect's 95% half-width in each simulated r-replicate campaign (rows of
    ``draws`` are the campaigns' responses), by the report's own model matrix."""
    frame = _campaign(points, names, r, draws[0])
    x = build(frame, factors).matrix.to_numpy(dtype=float)
    beta = np.linalg.lstsq(x, draws.T, rcond=None)[0]
    residuals = draws.T - x @ beta
    df = x.shape[0] - x.shape[1]
    s = np.sqrt((residuals**2).sum(axis=0) / df)
    widest = np.diag(np.linalg.inv(x.T @ x))[1:].max()
    return stats.t.ppf(0.975, df) * s * math.sqrt(widest)


@pytest.fixture(scope="module")
def pilot(tmp_path_factory: pytest.TempPathFactory):
    spec = SyntheticCampaign(
        effects=EFFECTS, noise=SIGMA, mean=MEAN, replicates=2, seed=5, write_tb=False
    )
    results = load(write_results(tmp_path_factory.mktemp("advisor"), spec))
    return spec, results


def test_recommended_replicates_meet_the_target_in_90pct_of_campaigns(pilot) -> None:
    spec, results = pilot
    advice = advise(results.trials, results.factors, "time", TARGET)
    assert advice.sigma_source == "error MS" and advice.sigma_df == 8  # 2^(4-1) x 2
    assert advice.points == 8 and advice.replicates_now == 2
    r = advice.replicates_assured
    assert r is not None and advice.replicates_expected is not None
    assert advice.replicates_expected <= r
    points, names = spec.points(), [n for n, _ in spec.factors]
    factors = [{"name": n, "levels": lv} for n, lv in spec.factors]
    rng = np.random.default_rng(11)
    truth = np.tile(_truth(points, names), r)
    draws = truth + rng.normal(0, SIGMA, (2000, len(truth)))
    widths = _widest_half_widths(points, names, factors, r, draws)
    met = float(np.mean(widths <= advice.target_half_width))
    assert met >= 0.90, (r, met)
    # the plug-in ("expected") count is on target only about half the time or a bit more:
    # the assurance is what makes the recommendation hold
    fewer = advice.replicates_expected
    truth_fewer = np.tile(_truth(points, names), fewer)
    draws_fewer = truth_fewer + rng.normal(0, SIGMA, (2000, len(truth_fewer)))
    met_fewer = np.mean(
        _widest_half_widths(points, names, factors, fewer, draws_fewer) <= advice.target_half_width
    )
    assert met_fewer < met


def test_simulated_widths_are_the_report_s(pilot) -> None:
    """The simulation's half-width is the one fit_response reports, on one campaign."""
    spec, _ = pilot
    points, names = spec.points(), [n for n, _ in spec.factors]
    factors = [{"name": n, "levels": lv} for n, lv in spec.factors]
    y = np.tile(_truth(points, names), 3) + np.random.default_rng(1).normal(0, SIGMA, 24)
    fit = fit_response(_campaign(points, names, 3, y), factors, "time")
    effects = fit.effects[~fit.effects["term"].isin(["mean", "Error"])]
    low = next(c for c in effects.columns if c.endswith("ci95_low"))
    high = next(c for c in effects.columns if c.endswith("ci95_high"))
    reported = float(((effects[high] - effects[low]) / 2).max())
    assert _widest_half_widths(points, names, factors, 3, y[None, :])[0] == pytest.approx(reported)


def test_over_pilots_too_the_recommendation_holds_90pct(pilot) -> None:
    """Each draw: a fresh 2-replicate pilot, its recommendation, then a campaign of that size.
    The F-quantile assurance covers the pilot's own uncertainty, so >= 90% over both."""
    spec, _ = pilot
    points, names = spec.points(), [n for n, _ in spec.factors]
    factors = [{"name": n, "levels": lv} for n, lv in spec.factors]
    rng = np.random.default_rng(7)
    truth = _truth(points, names)
    met = []
    for _ in range(150):
        y = np.tile(truth, 2) + rng.normal(0, SIGMA, 2 * len(truth))
        advice = advise(_campaign(points, names, 2, y), factors, "time", TARGET)
        r = advice.replicates_assured
        assert r is not None
        campaign = np.tile(truth, r) + rng.normal(0, SIGMA, r * len(truth))
        width = _widest_half_widths(points, names, factors, r, campaign[None, :])[0]
        met.append(width <= advice.target_half_width)
    assert np.mean(met) >= 0.90, np.mean(met)


@pytest.mark.parametrize(
    ("text", "value", "relative"),
    [("5%", 0.05, True), ("0.5", 0.5, False), (" 12.5% ", 0.125, True), ("2e-3", 0.002, False)],
)
def test_parse_target(text: str, value: float, relative: bool) -> None:
    target = parse_target(text)
    assert target.value == pytest.approx(value) and target.relative is relative


@pytest.mark.parametrize("text", ["", "abc", "-5%", "0", "nan", "5%%"])
def test_parse_target_refuses(text: str) -> None:
    with pytest.raises(UserError, match="--target-ci"):
        parse_target(text)


def test_required_replicates_by_hand() -> None:
    """c = 1/8 (a 2^3 full model), sigma 2, nu = infinity: r from t(8r-8) * 2 / sqrt(8r)."""
    expected, assured = required_replicates(2.0, math.inf, 1 / 8, 8, 8, 0.5)
    by_hand = next(
        r for r in range(2, 100) if stats.t.ppf(0.975, 8 * r - 8) * 2 / math.sqrt(8 * r) <= 0.5
    )
    assert expected == assured == by_hand
    # a small pilot (nu = 4) costs replicates; a tighter target too; none within reach: None
    assert required_replicates(2.0, 4, 1 / 8, 8, 8, 0.5)[1] > by_hand
    assert required_replicates(2.0, math.inf, 1 / 8, 8, 8, 0.25)[0] > by_hand
    assert required_replicates(2.0, 8, 1 / 8, 8, 8, 1e-4) == (None, None)
    assert MAX_REPLICATES >= 100


def test_per_replicate_c_of_an_orthogonal_design(pilot) -> None:
    _, results = pilot
    matrix = build(results.trials, results.factors).matrix
    c, points, params = per_replicate_c(matrix)
    assert (c, points, params) == (pytest.approx(1 / 8), 8, 8)


def test_unreplicated_saturated_design_uses_lenth(tmp_path: Path) -> None:
    spec = SyntheticCampaign(
        effects=EFFECTS, noise=SIGMA, mean=MEAN, replicates=1, seed=3, write_tb=False
    )
    results = load(write_results(tmp_path, spec))
    advice = advise(results.trials, results.factors, "time", TARGET)
    assert "Lenth" in advice.sigma_source and advice.replicates_assured is not None
