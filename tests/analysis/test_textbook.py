"""The analysis against published textbook numbers. Each data set is typed in from its source.

- Jain, *The Art of Computer Systems Performance Analysis* (Wiley, 1991), Chapter 18, the 2^2·3
  memory-cache example (Example 18.1 and the tables after it): factors A (memory size) and B
  (cache size), three replicates per cell; q0 = 41, qA = 21.5, qB = 9.5, qAB = 5; SSE = 102 on
  8 df; allocation 78.88 / 15.40 / 4.27 / 1.45 %; 90% interval of q0 = (39.08, 42.92).
- Montgomery, *Design and Analysis of Experiments* (8th ed., Wiley, 2013): the filtration-rate
  data of Example 6.2 (the 2^4 of Table 6.10: A temperature, B pressure, C formaldehyde
  concentration, D stirring rate), and Example 8.1, its principal half-fraction I = ABCD
  (Table 8.3), with the estimates of Table 8.4: [A] = 19.00, [B] = 1.50, [C] = 14.00,
  [D] = 16.50, [AB] = -1.00, [AC] = -18.50, [AD] = 19.00 (Montgomery's effects, = 2q).
- The other half of the same 2^4, I = -ABCD: its estimates are A - BCD, B - ACD, ... (signed
  aliases), which the full factorial's published effects (Table 6.11: A = 21.625, B = 3.125,
  C = 9.875, D = 14.625, AB = 0.125, AC = -18.125, AD = 16.625, BC = 2.375, BD = -0.375,
  CD = -1.125, ABC = 1.875, ABD = 4.125, ACD = -1.625, BCD = -2.625) fix at A' = 24.25,
  B' = 4.75, C' = 5.75, D' = 12.75, AB' = 1.25, AC' = -17.75, AD' = 14.25; and, as the book's
  fold-over argument says, (ℓ + ℓ')/2 is the full factorial's main effect.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from trainbed.analysis import fit
from trainbed.analysis.models.anova import fit_response

# Jain, Example 18.1: (A, B) -> the three replicates of the memory-cache response
JAIN_CELLS = {
    (-1, -1): (15, 18, 12),
    (1, -1): (45, 48, 51),
    (-1, 1): (25, 28, 19),
    (1, 1): (75, 75, 81),
}

# Montgomery, Example 6.2 (Table 6.10): treatment combination -> filtration rate (gal/h)
FILTRATION = {
    "(1)": 45, "a": 71, "b": 48, "ab": 65, "c": 68, "ac": 60, "bc": 80, "abc": 65,
    "d": 43, "ad": 100, "bd": 45, "abd": 104, "cd": 75, "acd": 86, "bcd": 70, "abcd": 96,
}  # fmt: skip
FULL_EFFECTS = {"A": 21.625, "B": 3.125, "C": 9.875, "D": 14.625}  # Table 6.11


def _frame(rows: list[tuple[dict[str, int], float]], response: str = "y") -> pd.DataFrame:
    out = []
    for i, (coded, y) in enumerate(rows):
        row = {"trial_id": f"t{i:02d}", "run_order": i + 1, "status": "succeeded", response: y}
        row.update({f"{name}_coded": value for name, value in coded.items()})
        row.update({name: ("high" if value > 0 else "low") for name, value in coded.items()})
        out.append(row)
    return pd.DataFrame(out)


def _factors(names: str) -> list[dict]:
    return [{"name": n, "levels": ["low", "high"]} for n in names]


def _jain() -> pd.DataFrame:
    rows = [({"A": a, "B": b}, y) for (a, b), ys in JAIN_CELLS.items() for y in ys]
    return _frame(rows)


def _filtration_half(sign: int) -> pd.DataFrame:
    rows = []
    for a, b, c, d in itertools.product([-1, 1], repeat=4):
        if a * b * c * d != sign:
            continue
        label = "".join(x for x, v in zip("abcd", (a, b, c, d), strict=True) if v > 0) or "(1)"
        rows.append(({"A": a, "B": b, "C": c, "D": d}, FILTRATION[label]))
    return _frame(rows)


def test_jain_memory_cache_mean_interval_and_allocation() -> None:
    result = fit_response(_jain(), _factors("AB"), "y")
    effects = result.effects.set_index("term")
    assert list(result.effects["term"]) == ["mean", "A", "B", "A:B", "Error"]
    assert effects.loc["mean", "q"] == pytest.approx(41.0)
    assert effects.loc["mean", "q_ci90_low"] == pytest.approx(39.08, abs=0.005)
    assert effects.loc["mean", "q_ci90_high"] == pytest.approx(42.92, abs=0.005)
    assert effects.loc[["A", "B", "A:B"], "q"].tolist() == pytest.approx([21.5, 9.5, 5.0])
    assert effects.loc[["A", "B", "A:B"], "effect"].tolist() == pytest.approx([43.0, 19.0, 10.0])
    # every q has the same standard error here: s_e / sqrt(12) = sqrt(102 / 8) / sqrt(12) = 1.03
    assert effects.loc["A", "q_se"] == pytest.approx(np.sqrt(102 / 8 / 12))
    allocation = result.allocation.set_index("term")["variation_pct"].round(2)
    assert allocation.to_dict() == {"A": 78.88, "B": 15.40, "A:B": 4.27, "Error": 1.45}
    sums = result.allocation.set_index("term")["sum_sq"]
    assert sums.to_dict() == pytest.approx({"A": 5547, "B": 1083, "A:B": 300, "Error": 102})


def test_montgomery_filtration_principal_half_fraction() -> None:
    result = fit_response(_filtration_half(+1), _factors("ABCD"), "y")
    effects = result.effects.set_index("term")
    published = {"A": 19.0, "B": 1.5, "C": 14.0, "D": 16.5, "A:B": -1.0, "A:C": -18.5, "A:D": 19.0}
    assert effects.loc[list(published), "effect"].tolist() == pytest.approx(
        list(published.values())
    )
    assert effects.loc["mean", "q"] == pytest.approx(566 / 8)
    aliases = effects["aliases"].to_dict()
    assert aliases["A"] == "B:C:D" and aliases["A:B"] == "C:D" and aliases["A:D"] == "B:C"
    # saturated: no error df, and the residual is exactly 0, not rounding noise like 3.4e-27
    assert result.df_resid == 0
    assert result.anova.set_index("term").loc["Residual", "sum_sq"] == 0.0
    assert effects.loc["Error", "variation_pct"] == 0.0
    assert (result.residuals == 0.0).all()


def test_montgomery_filtration_other_half_fraction_has_signed_aliases() -> None:
    principal = fit_response(_filtration_half(+1), _factors("ABCD"), "y").effects.set_index("term")
    result = fit_response(_filtration_half(-1), _factors("ABCD"), "y")
    effects = result.effects.set_index("term")
    expected = {"A": 24.25, "B": 4.75, "C": 5.75, "D": 12.75, "A:B": 1.25, "A:C": -17.75}
    expected["A:D"] = 14.25
    assert effects.loc[list(expected), "effect"].tolist() == pytest.approx(list(expected.values()))
    aliases = effects["aliases"].to_dict()
    assert aliases["A"] == "-B:C:D"
    assert aliases["D"] == "-A:B:C"
    assert aliases["A:B"] == "-C:D" and aliases["A:C"] == "-B:D" and aliases["A:D"] == "-B:C"
    for name, full in FULL_EFFECTS.items():  # the fold-over: (l + l') / 2 de-aliases the mains
        assert (principal.loc[name, "effect"] + effects.loc[name, "effect"]) / 2 == pytest.approx(
            full
        )
    assert result.anova.set_index("term").loc["Residual", "sum_sq"] == 0.0


def test_fit_api_returns_the_report_tables_for_a_results_directory(tmp_path: Path) -> None:
    """``trainbed.analysis.fit(DIR, response)`` on Jain's data written as a results directory."""
    frame = _jain()
    root = tmp_path / "jain"
    (root / "trials").mkdir(parents=True)
    campaign = {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": "jain"},
        "spec": {
            "factors": [{**f, "target": f"workload.{f['name']}"} for f in _factors("AB")],
            "responses": ["time"],
        },
    }
    (root / "campaign.yaml").write_text(yaml.safe_dump(campaign))
    design = frame[["trial_id", "run_order"]].assign(replicate=1)
    for name in "AB":
        design[name] = frame[name]
        design[f"{name}_coded"] = frame[f"{name}_coded"]
    design.to_csv(root / "design.csv", index=False)
    for _, row in frame.iterrows():
        trial = root / "trials" / row["trial_id"]
        trial.mkdir()
        (trial / "result.json").write_text(f'{{"status": "succeeded", "wall_time_s": {row["y"]}}}')
    tables = fit(root, "time")
    assert list(tables.anova["term"]) == ["A", "B", "A:B", "Residual"]
    assert tables.effects.iloc[0]["term"] == "mean"
    assert tables.effects.iloc[0]["q"] == pytest.approx(41.0)
    assert tables.allocation["variation_pct"].round(2).tolist() == [78.88, 15.40, 4.27, 1.45]
    assert tables.unit == "s"
