"""Tables for the report: Markdown for people (units in the headers), CSV and LaTeX for tools.

The CSV keeps the fit's own column names (``q``, ``q_ci95_low``, ``effect``, ...: the convention
is in the names, see docs/analysis.md) and adds the response's ``unit``; the Markdown shows the
same numbers with the unit in each header and the intervals as ``[low, high]``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.analysis.models.anova import Fit


def number(value: object, fmt: str = ".4g") -> str:
    """One cell: blank for NaN/None, 4 significant digits for floats, as-is otherwise."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return format(float(value), fmt)
    return str(value).replace("|", "\\|")


def markdown(frame: pd.DataFrame, fmt: str = ".4g") -> str:
    """A pipe table (``_(none)_`` when empty)."""
    if frame.empty:
        return "_(none)_\n"
    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(number(v, fmt) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write(out: Path, stem: str, frame: pd.DataFrame) -> None:
    """``stem.csv`` and ``stem.tex`` (LaTeX, 4 significant digits)."""
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / f"{stem}.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out / f"{stem}.tex").write_text(
            frame.to_latex(index=False, float_format="%.4g", na_rep="")
        )


def _interval(low: float, high: float) -> str:
    if np.isnan(low) or np.isnan(high):
        return ""
    return f"[{number(low)}, {number(high)}]"


def effects_markdown(fit: Fit, unit: str) -> str:
    """The effects table as people read it: q and its intervals, effect = 2q, the share."""
    u = f" ({unit})" if unit else ""
    rows = []
    for row in fit.effects.itertuples(index=False):
        rows.append(
            {
                "term": f"{row.term} ({row.limits})" if getattr(row, "limits", "") else row.term,
                f"q{u}": row.q,
                f"95% CI of q{u}": _interval(row.q_ci95_low, row.q_ci95_high),
                f"90% CI of q{u}": _interval(row.q_ci90_low, row.q_ci90_high),
                f"effect = 2q{u}": row.effect,
                "% of variation": row.variation_pct,
                "aliases": row.aliases,
            }
        )
    return markdown(pd.DataFrame(rows))


def anova_markdown(fit: Fit, unit: str) -> str:
    """The ANOVA table with the unit of its sums of squares."""
    compound = " " in unit or "/" in unit
    squared = (f" (({unit})²)" if compound else f" ({unit}²)") if unit else ""
    frame = fit.anova.rename(columns={"sum_sq": f"sum_sq{squared}", "PR(>F)": "p = PR(>F)"})
    return markdown(frame)
