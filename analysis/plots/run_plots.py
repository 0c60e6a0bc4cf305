"""Per-run figures: learning curves (the sync-period study) and
time-to-accuracy bars (the energy-to-accuracy study).

Both show what each run did rather than an average that hides runs:

- a learning curve is drawn for every trial, coloured by its level, ending in a dot at its last
  epoch; a level's mean is drawn only over the epochs that every one of its runs reached, so a
  run that stopped early (it met the target) never silently leaves the average;
- time-to-accuracy bars are per configuration (its levels as written), each run a dot, and a run
  that never reached the threshold is counted on its bar ("1 of 2 never reached"), never drawn as
  a zero; a configuration none of whose runs reached it has no bar, only that note.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from trainbed.analysis.plots.figures import grid, level_labels, save, titled
from trainbed.contract.layout import coded_column

#: the per-epoch validation accuracy, from result.json's epochs or the TensorBoard tag
ACCURACY_COLUMNS = ("val_accuracy", "accuracy per epoch")


def learning_curves(
    epochs: pd.DataFrame, trials: pd.DataFrame, names: list[str], directory: Path
) -> str | None:
    """Save :func:`learning_curves_figure` when there are curves; the PNG's name."""
    fig = learning_curves_figure(epochs, trials, names)
    return None if fig is None else save(fig, directory, "learning_curves")


def _curves(merged: pd.DataFrame, column: str) -> dict[str, tuple[np.ndarray, str]]:
    """Each trial's (epoch, accuracy) points in epoch order, and its line style (dashed: the
    trial did not succeed), split in one pass rather than one group at a time."""
    ordered = merged.sort_values(["trial_id", "epoch"], kind="stable")
    ids = ordered["trial_id"].to_numpy()
    xy = ordered[["epoch", column]].to_numpy(dtype=float)
    ok = (ordered["status"] == "succeeded").to_numpy()
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    bounds = [*starts[1:], len(ids)]
    return {
        str(ids[a]): (xy[a:b], "-" if ok[a:b].all() else "--")
        for a, b in zip(starts, bounds, strict=True)
    }


def learning_curves_figure(
    epochs: pd.DataFrame, trials: pd.DataFrame, names: list[str]
) -> Figure | None:
    """Validation accuracy per epoch, one panel per factor, every trial drawn."""
    column = next((c for c in ACCURACY_COLUMNS if c in epochs and epochs[c].notna().any()), None)
    if epochs.empty or column is None or not names:
        return None
    keep = ["trial_id", "status", *names, *(coded_column(n) for n in names)]
    merged = epochs[["trial_id", "epoch", column]].dropna().merge(trials[keep], on="trial_id")
    if merged.empty:
        return None
    curves = _curves(merged, column)
    fig, axes = grid(len(names), 3.4, 2.8, columns=4, sharey=True)
    for ax, name in zip(axes, names, strict=True):
        handles = []
        for i, (code, text) in enumerate(level_labels(trials, name).items()):
            runs = merged[merged[coded_column(name)] == code]
            colour = f"C{i}"
            mine = [curves[t] for t in runs["trial_id"].unique()]
            last_epochs = [int(xy[-1, 0]) for xy, _ in mine]
            # one artist per style, not one per run: a campaign of thousands of trials draws
            # (and lays out) in the time of a few lines, and looks the same
            for style in ("-", "--"):
                segments = [xy for xy, s in mine if s == style]
                if segments:
                    ax.add_collection(
                        LineCollection(segments, colors=colour, linestyles=style, alpha=0.45, lw=1)
                    )
            if mine:
                end = np.array([xy[-1] for xy, _ in mine])
                ax.plot(end[:, 0], end[:, 1], "o", color=colour, ms=4, alpha=0.8, ls="none")
            if last_epochs:
                common = min(last_epochs)
                shared = runs[runs["epoch"] <= common].groupby("epoch")[column].mean()
                ax.plot(shared.index, shared.to_numpy(), color=colour, lw=2.2, marker="s", ms=5)
            count = runs["trial_id"].nunique()
            handles.append(Line2D([], [], color=colour, lw=2.2, label=f"{text} ({count} runs)"))
        ax.autoscale_view()
        ax.set_title(f"by {name}", fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel("validation accuracy (fraction)", fontsize=8)
        ax.legend(handles=handles, title=name, fontsize=7, title_fontsize=7, loc="lower right")
    titled(
        fig,
        "Validation accuracy (fraction) per epoch\nthin lines: trials (dot = last epoch, dashed = "
        "did not succeed); thick: the level's mean while every run of the level is still going",
        fontsize=9,
    )
    return fig


def configuration_label(row: pd.Series, names: list[str]) -> str:
    """``batch_size=16`` lines, one per factor, as the levels were written."""
    return "\n".join(f"{n}={row[n]}" for n in names)


def tta_bars(
    tta: pd.DataFrame, trials: pd.DataFrame, names: list[str], threshold: float, directory: Path
) -> str | None:
    """Save :func:`tta_figure` when there is something to show; the PNG's name."""
    fig = tta_figure(tta, trials, names, threshold)
    return None if fig is None else save(fig, directory, "time_to_accuracy")


def tta_figure(
    tta: pd.DataFrame, trials: pd.DataFrame, names: list[str], threshold: float
) -> Figure | None:
    """Time to accuracy per configuration: the mean over the runs that reached ``threshold``,
    every run a dot, censored runs counted on the bar. ``tta`` has one row per trial."""
    if tta.empty:
        return None
    merged = tta.merge(trials[["trial_id", *names, *(coded_column(n) for n in names)]])
    if merged.empty:
        return None
    coded = [coded_column(n) for n in names]

    # fastest configuration first; those that never reached it last
    def order(item: tuple) -> tuple:
        mean = item[1]["time_to_accuracy_s"].mean(skipna=True)
        return (bool(np.isnan(mean)), 0.0 if np.isnan(mean) else float(mean), item[0])

    groups = sorted(merged.groupby(coded), key=order)
    fig, ax = plt.subplots(figsize=(max(6.5, 0.9 * len(groups) + 1.5), 3.6 + 0.16 * len(names)))
    reached_all = merged.loc[~merged["censored"].astype(bool), "time_to_accuracy_s"].dropna()
    top = float(reached_all.max()) if len(reached_all) else 1.0
    labels = []
    for x, (_, runs) in enumerate(groups):
        labels.append(configuration_label(runs.iloc[0], names))
        never = runs["censored"].astype(bool)
        reached = runs.loc[~never, "time_to_accuracy_s"].dropna()
        if len(reached):
            ax.bar(x, reached.mean(), color="tab:blue", alpha=0.75, width=0.7)
            ax.plot([x] * len(reached), reached.to_numpy(), "o", color="black", ms=3.5)
        if never.any():
            note = f"{int(never.sum())} of {len(runs)}\nnever reached" if len(reached) else ""
            ax.text(
                x,
                top * 0.03,
                note or "never\nreached",
                ha="center",
                va="bottom",
                fontsize=7,
                color="darkred",
                bbox={"facecolor": "white", "edgecolor": "darkred", "alpha": 0.85, "pad": 2},
            )
    ax.set_xticks(range(len(groups)), labels, fontsize=7)
    ax.set_ylim(0, top * 1.15)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_ylabel("time to accuracy (s)")
    ax.set_title(
        f"Time to accuracy ≥ {threshold:g} by configuration, fastest first\n"
        "(validation accuracy, worker's clock; bars: mean of the runs that reached it, dots: "
        "runs)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
