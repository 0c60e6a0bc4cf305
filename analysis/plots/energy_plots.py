"""Energy-to-accuracy bars: per configuration, what each run spent to reach the target.

The energy counterpart of the time-to-accuracy bars (``run_plots``), drawn from ``result.json``'s
``energy_to_accuracy_j``: a bar is the mean of the runs that reached the target with a meter,
every such run a dot, cheapest first. A run that never reached the target is counted on its bar
("1 of 3 never reached"), and a configuration whose runs had no meter says "no meter": neither
is ever drawn as a zero. When too many runs are censored to fit a model, this is what the
energy-to-accuracy section points to.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from trainbed.analysis.models.fit_runs import CENSORED, left_out
from trainbed.analysis.plots.figures import save
from trainbed.analysis.plots.run_plots import configuration_label
from trainbed.contract.layout import coded_column

RESPONSE = "energy_to_accuracy"
STEM = "energy_to_accuracy"


def _note(ax: plt.Axes, x: int, y: float, text: str) -> None:
    ax.text(
        x,
        y,
        text,
        ha="center",
        va="bottom",
        fontsize=7,
        color="darkred",
        bbox={"facecolor": "white", "edgecolor": "darkred", "alpha": 0.85, "pad": 2},
    )


def energy_bars(trials: pd.DataFrame, names: list[str], directory: Path) -> str | None:
    """Save the figure (``energy_to_accuracy.png``/``.svg``); None when no run reached the
    target with a meter and none was censored (nothing to show)."""
    if RESPONSE not in trials:
        return None
    ok = trials[trials["status"] == "succeeded"].copy()
    ok["_why"] = left_out(ok, RESPONSE)
    if not (ok["_why"].eq("") | ok["_why"].eq(CENSORED)).any():
        return None
    coded = [coded_column(n) for n in names]

    def order(item: tuple) -> tuple:
        mean = item[1].loc[item[1]["_why"].eq(""), RESPONSE].mean()
        return (bool(np.isnan(mean)), 0.0 if np.isnan(mean) else float(mean), item[0])

    groups = sorted(ok.groupby(coded), key=order)
    reached_all = ok.loc[ok["_why"].eq(""), RESPONSE]
    top = float(reached_all.max()) if len(reached_all) else 1.0
    labels = [configuration_label(runs.iloc[0], names) for _, runs in groups]
    longest = max(len(line) for text in labels for line in text.splitlines())
    per = max(0.9, 0.075 * longest)  # inches per bar, so that neighbouring labels never touch
    fig, ax = plt.subplots(figsize=(max(6.5, per * len(groups) + 1.5), 3.6 + 0.16 * len(names)))
    for x, (_, runs) in enumerate(groups):
        reached = runs.loc[runs["_why"].eq(""), RESPONSE].astype(float)
        never = int(runs["_why"].eq(CENSORED).sum())
        if len(reached):
            ax.bar(x, reached.mean(), color="tab:green", alpha=0.75, width=0.7)
            ax.plot([x] * len(reached), reached.to_numpy(), "o", color="black", ms=3.5)
        metered = len(reached) + never
        if never:
            text = f"{never} of {metered}\nnever reached" if len(reached) else "never\nreached"
            _note(ax, x, top * 0.03, text)
        elif not metered:
            _note(ax, x, top * 0.03, "no meter")
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("energy to accuracy (J)")
    ax.set_title(
        "Energy to accuracy by configuration, cheapest first\n(bars: mean of the runs that "
        "reached the target with a meter, dots: runs)",
        fontsize=9,
    )
    fig.tight_layout()
    return save(fig, directory, STEM)
