"""The report's figures: shared helpers, and the residual and correlation plots.

Each figure is saved as PNG and SVG (matplotlib's Agg backend: no display needed), has a title
that names its response, and axis labels with units (``units.label``). Levels are shown as
written in the campaign, in their written order (low = -1 first), never as codes or in
alphabetical order. The other figures live beside this module: ``factor_plots`` (main effects,
interactions), ``effect_plots`` (Pareto, half-normal) and ``run_plots`` (learning curves,
time-to-accuracy bars).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # SVG text stays text: searchable, and smaller

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from trainbed.analysis.models.anova import Fit  # noqa: E402
from trainbed.analysis.models.units import label  # noqa: E402
from trainbed.contract.layout import coded_column  # noqa: E402

DPI = 110
#: panels per row in a grid of factors or factor pairs: 12 factors give 2 rows of mains and
#: 11 rows of 66 interaction panels, each panel still ~290 px wide
MAX_COLUMNS = 6


def save(fig: plt.Figure, directory: Path, stem: str) -> str:
    """Save ``fig`` (laid out by tight_layout, so nothing is clipped) as ``stem.png`` and
    ``stem.svg``; returns the PNG's name."""
    directory.mkdir(parents=True, exist_ok=True)
    for suffix in ("png", "svg"):
        fig.savefig(directory / f"{stem}.{suffix}", dpi=DPI)
    plt.close(fig)
    return f"{stem}.png"


def grid(count: int, width: float, height: float, columns: int = MAX_COLUMNS, **kwargs):
    """A figure with ``count`` panels in rows of at most ``columns``; unused panels hidden.
    Returns the figure and the used axes in reading order."""
    ncols = max(1, min(count, columns))
    nrows = max(1, math.ceil(count / ncols))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(width * ncols, height * nrows + 0.5),
        squeeze=False,
        layout="constrained",  # makes room for legends below panels and the title above
        **kwargs,
    )
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return fig, flat[:count]


def titled(fig: plt.Figure, title: str, fontsize: float = 11) -> None:
    """A figure title over a grid of panels, laid out so that it overlaps none of them."""
    fig.suptitle(title, fontsize=fontsize)
    if fig.get_layout_engine() is None:
        height = fig.get_figheight()
        lines = title.count("\n") + 1
        fig.tight_layout(rect=(0, 0, 1, 1 - (0.15 + lines * fontsize * 1.4 / 72) / height))


def level_ticks(ax: plt.Axes, labels: list[str]) -> None:
    """Level names as x ticks at 0, 1, ...; long ones slanted so that neighbours never touch."""
    slant = max(len(t) for t in labels) > 9 if labels else False
    ax.set_xticks(
        range(len(labels)),
        labels,
        fontsize=8,
        rotation=20 if slant else 0,
        ha="right" if slant else "center",
    )
    ax.set_xlim(-0.4, len(labels) - 0.6)


def level_labels(trials: pd.DataFrame, factor: str) -> dict[int, str]:
    """Coded value -> the level as written, in coded (written) order."""
    pairs = trials[[coded_column(factor), factor]].dropna().drop_duplicates(coded_column(factor))
    pairs = pairs.sort_values(coded_column(factor))
    return {int(c): str(v) for c, v in zip(pairs[coded_column(factor)], pairs[factor], strict=True)}


def residuals(fit: Fit, directory: Path) -> str | None:
    """Residuals vs predicted, normal Q-Q and residuals vs run order; None when a saturated
    design leaves no residuals (all exactly 0)."""
    if fit.df_resid == 0 or not fit.residuals.abs().gt(0).any():
        return None
    name = label(fit.response, log=fit.transform == "log")
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    axes[0].scatter(fit.fitted, fit.residuals)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel=f"predicted {name}", ylabel=f"residual {name}", title="vs predicted")
    stats.probplot(fit.residuals.to_numpy(), dist="norm", plot=axes[1])
    axes[1].set(title="normal Q-Q", xlabel="theoretical normal quantile", ylabel=f"residual {name}")
    axes[2].scatter(fit.run_order, fit.residuals)
    axes[2].axhline(0, color="grey", lw=0.8)
    axes[2].set(xlabel="run order", ylabel=f"residual {name}", title="vs run order")
    titled(fig, f"Residuals of {name}")
    stem = f"residuals_{fit.response}" + ("_log" if fit.transform == "log" else "")
    return save(fig, directory, stem)


def correlation(trials: pd.DataFrame, columns: list[str], directory: Path) -> str | None:
    """Pearson correlations of the coded factors and the responses (the sync-period study's
    heatmap)."""
    numeric = trials[columns].apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    numeric = numeric.loc[:, numeric.nunique() > 1]
    if numeric.shape[1] < 2:
        return None
    corr = numeric.corr()
    size = len(corr)
    fig, ax = plt.subplots(figsize=(2 + 0.7 * size, 1.2 + 0.6 * size))
    image = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(size), corr.columns, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(size), corr.columns, fontsize=8)
    for i in range(size):
        for j in range(size):
            value = corr.iat[i, j]
            text = "" if np.isnan(value) else f"{round(value, 2) + 0.0:.2f}"  # no "-0.00"
            ax.text(j, i, text, ha="center", va="center", fontsize=7)
    fig.colorbar(image, label="Pearson r (unitless)")
    ax.set_title("Correlation of the coded factors and the responses")
    fig.tight_layout()
    return save(fig, directory, "correlation")
