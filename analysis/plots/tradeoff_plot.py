"""The trade-off figure: design points over two responses, the Pareto set marked.

One panel per pair of responses (one panel for two, three for three). Each design point is its
runs' mean with its interval as error bars, labelled with its levels as written (with its
point name alone on three panels, where the table gives the levels); the Pareto set
(from the runs) is red and joined by its front, dominated points grey, and the model's estimate
of each point is a hollow square beside it. Censored and unmeasured points have no position:
the caption under the figure names them. Saved as PNG and SVG like every other figure.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from trainbed.analysis.models.pareto import OPTIMAL, Objective
from trainbed.analysis.models.units import label
from trainbed.analysis.plots.figures import grid, save, titled

FRONT = "tab:red"
OTHER = "0.55"


def _axis(objective: Objective) -> str:
    arrow = "higher is better" if objective.maximise else "lower is better"
    return f"{label(objective.response)}  ({arrow})"


def _errors(estimates: pd.DataFrame) -> np.ndarray | None:
    low, high, mean = (estimates[c].to_numpy(dtype=float) for c in ("low", "high", "mean"))
    if np.isnan(low).all():
        return None
    return np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0)


def tradeoff_figure(
    objectives: list[Objective],
    runs: dict[str, pd.DataFrame],
    model: dict[str, pd.DataFrame],
    status: pd.Series,
    levels: pd.Series,
    directory: Path,
    title: str,
    factors: list[str],
) -> str | None:
    """Draw and save ``tradeoff.png``/``.svg``; None when no point has every response.
    ``levels`` labels each point; the legend names the points not drawn and why."""
    shown = status.isin([OPTIMAL, "dominated"])
    if not shown.any():
        return None
    pairs = list(combinations(objectives, 2))
    not_drawn = ", ".join(f"{p} ({status[p]})" for p in status.index[~shown])
    fig, axes = grid(len(pairs), 6.4, 4.8, columns=3)
    for ax, (ox, oy) in zip(axes, pairs, strict=True):
        rx, ry = runs[ox.response][shown], runs[oy.response][shown]
        mx, my = model[ox.response][shown], model[oy.response][shown]
        on_front = status[shown].eq(OPTIMAL).to_numpy()
        for mask, colour in ((on_front, FRONT), (~on_front, OTHER)):
            if not mask.any():
                continue
            ax.errorbar(
                rx["mean"][mask],
                ry["mean"][mask],
                xerr=None if _errors(rx[mask]) is None else _errors(rx[mask]),
                yerr=None if _errors(ry[mask]) is None else _errors(ry[mask]),
                fmt="o",
                ms=7,
                color=colour,
                ecolor=colour,
                elinewidth=1,
                capsize=3,
                zorder=3,
            )
            ax.scatter(
                mx["mean"][mask],
                my["mean"][mask],
                marker="s",
                s=46,
                facecolors="none",
                edgecolors=colour,
                linewidths=1.2,
                zorder=2,
            )
        if len(pairs) == 1 and on_front.sum() > 1:
            front = pd.DataFrame({"x": rx["mean"][on_front], "y": ry["mean"][on_front]})
            front = front.sort_values("x")
            ax.plot(front["x"], front["y"], color=FRONT, lw=1, ls="--", zorder=1)
        for point, x, y in zip(rx.index, rx["mean"], ry["mean"], strict=True):
            ax.annotate(
                f"{point}: {levels[point]}" if len(pairs) == 1 else point,
                (x, y),
                xytext=(6, 5),
                textcoords="offset points",
                fontsize=7.5,
                color=FRONT if status[point] == OPTIMAL else "0.3",
            )
        ax.set_xlabel(_axis(ox), fontsize=9)
        ax.set_ylabel(_axis(oy), fontsize=9)
        ax.grid(alpha=0.3)
        ax.margins(x=0.25, y=0.12)
    handles = [
        Line2D([], [], marker="o", ls="", color=FRONT, label="Pareto set: runs' mean, 95% CI"),
        Line2D([], [], marker="o", ls="", color=OTHER, label="dominated: runs' mean, 95% CI"),
        Line2D([], [], marker="s", ls="", mfc="none", color="0.2", label="model's estimate"),
    ]
    if not_drawn:
        handles.append(Line2D([], [], ls="", label=f"not drawn: {not_drawn}"))
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncols=2 if len(pairs) == 1 else len(handles),
        fontsize=8,
        frameon=False,
    )
    labelled = f"{' / '.join(factors)}" if len(pairs) == 1 else "by name (levels in the table)"
    titled(fig, f"{title}\npoints labelled {labelled}", fontsize=10)
    return save(fig, directory, "tradeoff")
