"""``trainbed predict``'s table: each response's predicted mean with its intervals.

The numbers are :func:`trainbed.analysis.models.predict.predict`'s; this only lays them out for a
person (``--json`` prints :meth:`PredictionSet.to_json` instead). Interpolation, averaged
factors and the aliased terms a prediction assumes are printed under the table, never hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from trainbed.analysis.models.predict import PredictionSet


def _n(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def render_prediction(console: Console, found: PredictionSet) -> None:
    point = ", ".join(
        f"{s.factor}={s.value}" if s.how != "averaged" else f"{s.factor}=(averaged)"
        for s in found.point.values()
    )
    level = found.predictions[0].level if found.predictions else 0.95
    table = Table(title=f"predicted at {point}", title_justify="left")
    for column in ("response", "unit", "mean", f"{level:.0%} CI", f"{level:.0%} PI", "measured"):
        table.add_column(column)
    for p in found.predictions:
        ci = "" if p.ci is None else f"[{_n(p.ci[0])}, {_n(p.ci[1])}]"
        pi = "" if p.pi is None else f"[{_n(p.pi[0])}, {_n(p.pi[1])}]"
        measured = f"{_n(p.measured_mean)} ({p.measured_runs} runs)" if p.measured_runs else ""
        table.add_row(p.response, p.unit, _n(p.mean), ci, pi, measured)
    console.print(table)
    for note in found.notes():
        console.print(f"[yellow]{note}[/]", highlight=False)
    aliased = next((p.aliased for p in found.predictions if p.aliased), [])
    if aliased:
        console.print(
            "[yellow]not a design point: the prediction rests on aliased terms:[/] "
            + "; ".join(aliased),
            highlight=False,
        )
    if any(p.ci is None for p in found.predictions):
        console.print("no intervals where the model has no error degrees of freedom")
    for response, why in found.skipped.items():
        console.print(f"{response}: not predicted ({why})", highlight=False)
