"""Pure parts of the model: coding, multi-level factors vs statsmodels, rank checks, the defining
relation, and the CRC-32C the fast reader checks. No files."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from statsmodels.stats.anova import anova_lm

from trainbed.analysis.models.aliases import defining_relation
from trainbed.analysis.models.anova import fit_response
from trainbed.analysis.reading.synthetic import SyntheticCampaign
from trainbed.analysis.reading.tbevents import crc32c_many, masked

FACTORS = [
    {"name": "model", "levels": ["MLP", "LeNet5", "ResNet18"]},  # written order, not alphabetical
    {"name": "cpu", "levels": ["1", "2"]},
]


def _multilevel(replicates: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = {0: -4.0, 1: 1.0, 2: 3.0}  # level effects, sum 0
    rows = []
    for rep, (m, c) in itertools.product(range(replicates), itertools.product(range(3), [-1, 1])):
        y = 50 + truth[m] + 2.0 * c + (1.0 * c if m == 2 else 0.0) + rng.normal(0, 0.3)
        rows.append(
            {
                "trial_id": f"t{rep}{m}{c}",
                "run_order": len(rows) + 1,
                "status": "succeeded",
                "model": FACTORS[0]["levels"][m],
                "model_coded": m,
                "cpu": FACTORS[1]["levels"][(c + 1) // 2],
                "cpu_coded": c,
                "time": y,
            }
        )
    return pd.DataFrame(rows)


def test_multilevel_factor_matches_statsmodels_type3_and_gives_per_level_effects() -> None:
    trials = _multilevel()
    fit = fit_response(trials, FACTORS, "time")
    assert list(fit.anova["term"]) == ["model", "cpu", "model:cpu", "Residual"]
    assert list(fit.anova["df"]) == [2, 1, 2, 12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' own deprecations are not ours
        model = smf.ols(
            "time ~ C(model_coded, Sum, levels=[0, 1, 2]) * cpu_coded", data=trials
        ).fit()
        reference = anova_lm(model, typ=3).drop(index="Intercept")
    np.testing.assert_allclose(fit.anova["sum_sq"], reference["sum_sq"], rtol=1e-8)
    np.testing.assert_allclose(fit.anova["F"][:3], reference["F"][:3], rtol=1e-8)
    effects = fit.effects.set_index("term")
    for level, truth in {"MLP": -4.0, "LeNet5": 1.0, "ResNet18": 3.0}.items():
        row = effects.loc[f"model[{level}]"]
        assert row["q_ci95_low"] <= truth <= row["q_ci95_high"], (level, row.to_dict())
    assert effects.loc["cpu", "q"] == pytest.approx(2.0 + 1.0 / 3, abs=0.3)
    assert fit.effects["variation_pct"].sum() == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("generators", "expected"),
    [
        ({}, []),
        ({3: [0, 1, 2]}, ["+A:B:C:D"]),
        ({2: [0, 1], 3: [0, 1]}, ["+C:D", "+A:B:C", "+A:B:D"]),
    ],
)
def test_defining_relation(generators: dict[int, list[int]], expected: list[str]) -> None:
    points = SyntheticCampaign(generators=generators).points()
    assert defining_relation(points, ["A", "B", "C", "D"]) == expected


def test_a_lost_design_point_drops_what_it_confounds_with_a_note() -> None:
    points = SyntheticCampaign().points()
    names = ["A", "B", "C", "D"]
    rows = []
    rng = np.random.default_rng(1)
    for rep in range(2):
        for p, point in enumerate(points):
            lost = p == 0  # design point 0 has no result in either replicate
            row = {
                "trial_id": f"{rep}-{p}",
                "run_order": len(rows) + 1,
                "status": "missing" if lost else "succeeded",
            }
            row.update({f"{n}_coded": int(v) for n, v in zip(names, point, strict=True)})
            row["time"] = np.nan if lost else 10 + 2 * point[0] + rng.normal(0, 0.1)
            rows.append(row)
    factors = [{"name": n, "levels": [0, 1]} for n in names]
    fit = fit_response(pd.DataFrame(rows), factors, "time")
    assert fit.df_resid >= 1
    assert not fit.balanced
    assert any("not fitted" in note for note in fit.notes)
    assert fit.effects.set_index("term").loc["A", "q"] == pytest.approx(2.0, abs=0.3)


@pytest.mark.parametrize(
    ("payload", "crc"),
    [
        (b"", 0x00000000),
        (b"123456789", 0xE3069283),
        (bytes(32), 0x8A9136AA),
        (bytes(range(32)), 0x46DD794E),
    ],
)
def test_crc32c_known_values(payload: bytes, crc: int) -> None:
    data = np.frombuffer(b"xx" + payload, dtype=np.uint8)
    got = crc32c_many(data, np.array([2]), np.array([len(payload)]))
    assert int(got[0]) == crc


def test_crc32c_many_matches_tensorboard_on_mixed_lengths() -> None:
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    rng = np.random.default_rng(0)
    blobs = [rng.bytes(int(n)) for n in rng.integers(0, 200, size=40)]
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    starts = np.cumsum([0] + [len(b) for b in blobs[:-1]])
    lengths = np.array([len(b) for b in blobs])
    got = masked(crc32c_many(data, starts, lengths))
    assert [int(g) for g in got] == [masked_crc32c(b) for b in blobs]
