"""Pareto and half-normal plots of the effects, with the line that separates signal from noise.

Both plot Jain's q (half the change from the low to the high level), in the response's unit.

- Unreplicated (no error df): Lenth's margin of error ME = t(0.975, m/3)·PSE and simultaneous
  margin SME = t(γ, m/3)·PSE with γ = (1 + 0.95^(1/m))/2 (Lenth 1989), m the number of effects.
  A bar past ME is active at 5% on its own; past SME, also when all m are looked at together.
- Replicated: the t critical value, t(0.975, error df)·s_q, beyond which a q is significant at
  5% (its 95% interval excludes 0).
The half-normal plot's reference line is |q| = σ_q·z (σ_q Lenth's PSE or s_q): inactive effects
fall along it, active ones above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from trainbed.analysis.models.anova import MEAN_TERM, Fit
from trainbed.analysis.models.limits import NOT_ENFORCED, term_labels
from trainbed.analysis.models.units import label, unit
from trainbed.analysis.plots.figures import save

#: at most this many points of the half-normal plot are labelled (the largest)
MAX_LABELS = 14


@dataclass(frozen=True)
class Margin:
    """Where significance starts on the q scale, and how it was found."""

    me: float
    sme: float | None
    sigma: float
    method: str  # "lenth" | "t"
    df: float


def plotted_effects(fit: Fit) -> pd.DataFrame:
    """The rows that carry an estimate: not the mean, not the share-only or Error rows."""
    effects = fit.effects
    return effects[(effects["term"] != MEAN_TERM) & effects["q"].notna()].reset_index(drop=True)


def margin(fit: Fit) -> Margin | None:
    """Lenth's ME/SME without error df, else the t critical value times s_q (the median s_q
    when an unbalanced design gives the terms different standard errors)."""
    effects = plotted_effects(fit)
    m = len(effects)
    if m == 0:
        return None
    if fit.lenth_pse is not None:
        d = m / 3.0
        gamma = (1 + 0.95 ** (1.0 / m)) / 2
        pse = fit.lenth_pse
        me = float(stats.t.ppf(0.975, d)) * pse
        return Margin(me, float(stats.t.ppf(gamma, d)) * pse, pse, "lenth", d)
    sigma = float(effects["q_se"].median())
    return Margin(float(stats.t.ppf(0.975, fit.df_resid)) * sigma, None, sigma, "t", fit.df_resid)


def _stem(kind: str, fit: Fit) -> str:
    return f"{kind}_{fit.response}" + ("_log" if fit.transform == "log" else "")


def pareto(fit: Fit, directory: Path) -> str:
    """Save :func:`pareto_figure`; the PNG's name."""
    return save(pareto_figure(fit), directory, _stem("pareto", fit))


def pareto_figure(fit: Fit) -> Figure:
    """Signed bars of q, largest |q| on top, with ±ME/±SME (Lenth) or ±t·s_q."""
    log = fit.transform == "log"
    u = unit(fit.response, log=log)
    effects = plotted_effects(fit)
    effects = effects.assign(size=effects["q"].abs()).sort_values("size").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(effects) + 2.1), layout="constrained")
    colours = ["tab:blue" if q >= 0 else "tab:red" for q in effects["q"]]
    ax.barh(range(len(effects)), effects["q"], color=colours)
    ax.set_yticks(range(len(effects)), term_labels(effects), fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    bound = margin(fit)
    if bound is not None:
        if bound.method == "lenth":
            ax.axvline(bound.me, color="grey", ls="--", label=f"Lenth ME = ±{bound.me:.3g} {u}")
            ax.axvline(-bound.me, color="grey", ls="--")
            assert bound.sme is not None
            ax.axvline(bound.sme, color="black", ls=":", label=f"Lenth SME = ±{bound.sme:.3g} {u}")
            ax.axvline(-bound.sme, color="black", ls=":")
        else:
            text = f"t(0.975, {bound.df:g})·s_q = ±{bound.me:.3g} {u}"
            ax.axvline(bound.me, color="grey", ls="--", label=text)
            ax.axvline(-bound.me, color="grey", ls="--")
        # below the axes, where no bar can be
        fig.legend(loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    ax.set_xlabel(f"q ({u}): half the change from the low to the high level (blue +, red −)")
    name = label(fit.response, log=log)
    ax.set_title(f"Pareto of the effects on {name}", fontsize=10)
    return fig


def spread(targets: np.ndarray, gap: float, low: float, high: float) -> np.ndarray:
    """Positions for labels wanted at ``targets`` (any order), at least ``gap`` apart and inside
    [low, high] where they fit, each as close to its target as that allows. Pure."""
    order = np.argsort(targets, kind="stable")
    placed = np.asarray(targets, dtype=float)[order].copy()
    for i in range(len(placed)):  # push up
        placed[i] = max(placed[i], low if i == 0 else placed[i - 1] + gap)
    overflow = placed[-1] - high if len(placed) else 0.0
    if overflow > 0:  # then down from the top, as far as the bottom allows
        placed[-1] -= overflow
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - gap)
    out = np.empty_like(placed)
    out[order] = placed
    return out


def half_normal(fit: Fit, directory: Path) -> str:
    """Save :func:`half_normal_figure`; the PNG's name."""
    return save(half_normal_figure(fit), directory, _stem("half_normal", fit))


def half_normal_figure(fit: Fit) -> Figure:
    """|q| against half-normal quantiles, the reference line |q| = σ_q·z, the largest labelled
    without overlap (labels stacked at least one line apart, with leader lines)."""
    log = fit.transform == "log"
    u = unit(fit.response, log=log)
    effects = plotted_effects(fit)
    effects = effects.assign(size=effects["q"].abs()).sort_values("size").reset_index(drop=True)
    m = len(effects)
    z = stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
    sizes = effects["size"].to_numpy()
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    ax.scatter(z, sizes, color="tab:blue", zorder=3)
    bound = margin(fit)
    if bound is not None and bound.sigma > 0:
        xs = np.array([0.0, float(z.max()) * 1.05])
        source = "Lenth's PSE" if bound.method == "lenth" else "s_q"
        text = f"|q| = σ·z, σ = {source} = {bound.sigma:.3g} {u}"
        ax.plot(xs, bound.sigma * xs, color="grey", ls="--", label=text)
        ax.legend(fontsize=8, loc="upper left")
    top = float(max(sizes.max(), bound.sigma * z.max() if bound else 0.0)) if m else 1.0
    ax.set_ylim(0, top * 1.12 + 1e-12)
    ax.set_xlim(0, float(z.max()) * 1.45 if m else 1.0)
    ax.set_xlabel("half-normal quantile z (unitless)")
    ax.set_ylabel(f"|q| ({u})")
    shown = "" if m <= MAX_LABELS else f"; the {MAX_LABELS} largest labelled"
    marked = [n for n in term_labels(effects) if n.endswith(f"({NOT_ENFORCED})")]
    if marked:  # said in the title too: the marked term may not be among those labelled
        shown += f"\n{NOT_ENFORCED}: " + ", ".join(n.rsplit(" (", 1)[0] for n in marked)
    ax.set_title(
        f"Half-normal plot of the effects on {label(fit.response, log=log)}{shown}", fontsize=10
    )
    fig.tight_layout()  # before the labels are placed: their spacing depends on the axes' size
    chosen = list(range(max(0, m - MAX_LABELS), m))
    names = term_labels(effects)
    if chosen:
        height_px = ax.get_window_extent().height
        gap = (8 * 1.35 * fig.dpi / 72) / height_px * (ax.get_ylim()[1] - ax.get_ylim()[0])
        low, high = ax.get_ylim()[0] + gap / 2, ax.get_ylim()[1] - gap / 2
        ys = spread(sizes[chosen], gap, low, high)
        span = ax.get_xlim()[1]
        for index, y in zip(chosen, ys, strict=True):
            ax.annotate(
                names[index],
                (z[index], sizes[index]),
                xytext=(z[index] + 0.04 * span, y),
                fontsize=8,
                va="center",
                arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.6},
            )
    return fig
