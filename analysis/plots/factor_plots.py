"""Main-effect and interaction plots (the Fashion-MNIST 2^(4-1) resource study), on one
y-scale per response.

A reader compares panels by eye, so every panel of a response shares one y-range: a flat,
non-significant interaction then looks flat next to a real one. Levels are the ones written in
the campaign, in their written order. Panels flow in a grid of at most ``MAX_COLUMNS``, which
keeps 12 factors (66 pairs) readable.

In a fractional design the cell means of a pair measure the whole alias set of its interaction,
not the interaction alone: each such panel says what it is aliased with ("aliased with cpu").
When a pair is aliased with a main effect (resolution III), its panel shows that main effect
rather than an interaction, so it is drawn only on request (``aliased=True``) and listed instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trainbed.analysis.models.aliases import estimable_terms
from trainbed.analysis.models.limits import NOT_ENFORCED
from trainbed.analysis.models.units import label
from trainbed.analysis.plots.figures import grid, level_labels, level_ticks, save, titled
from trainbed.contract.layout import coded_column

#: alias words shown on a panel at most; the rest are counted
MAX_NOTE_WORDS = 2


@dataclass(frozen=True)
class PairAliasing:
    """What the cell means of one pair of factors measure in this design."""

    pair: tuple[str, str]
    #: signed main effects and two-factor interactions the pair's interaction is aliased with,
    #: mains first ("-cpu", "memory:epochs")
    words: tuple[str, ...] = ()
    #: how many interactions of three or more factors it is also aliased with
    higher: int = 0
    #: aliased with a main effect (a resolution III design)
    with_main: bool = False
    #: False when the pair's column is constant in the runs (a word of the defining relation)
    estimable: bool = True

    @property
    def note(self) -> str:
        """``aliased with cpu`` (at most MAX_NOTE_WORDS words, then a count); empty if none."""
        if not self.estimable:
            return "not estimable: constant in these runs"
        if not self.words:
            return f"aliased with {self.higher} higher-order interactions" if self.higher else ""
        shown = list(self.words[:MAX_NOTE_WORDS])
        more = len(self.words) - len(shown)
        return "aliased with " + ", ".join(shown) + (f" (+{more} more 2FIs)" if more else "")


def pair_aliasing(usable: pd.DataFrame, factors: list[dict]) -> dict[tuple[str, str], PairAliasing]:
    """Per pair of factors, its aliases among the distinct design points of ``usable``.
    Only two-level designs alias; with a multi-level factor every pair is plain."""
    names = [f["name"] for f in factors]
    pairs = list(combinations(names, 2))
    if not all(len(f["levels"]) == 2 for f in factors) or usable.empty:
        return {p: PairAliasing(p) for p in pairs}
    points = np.unique(usable[[coded_column(n) for n in names]].to_numpy(dtype=int), axis=0)
    out: dict[tuple[str, str], PairAliasing] = {}
    for term in estimable_terms(points, names):
        signs = term.signs or (1,) * len(term.aliases)
        members = [(term.factors, 1), *zip(term.aliases, signs, strict=True)]
        for factors_i, sign_i in members:
            if len(factors_i) != 2:
                continue
            others = [(f, s * sign_i) for f, s in members if f != factors_i]
            others.sort(key=lambda item: (len(item[0]), [names.index(x) for x in item[0]]))
            words = tuple(("-" if s < 0 else "") + ":".join(f) for f, s in others if len(f) <= 2)
            pair = (factors_i[0], factors_i[1])
            with_main = any(len(f) == 1 for f, _ in others)
            out[pair] = PairAliasing(pair, words, len(others) - len(words), with_main)
    return {p: out.get(p, PairAliasing(p, estimable=False)) for p in pairs}


def _cell_means(usable: pd.DataFrame, a: str, b: str, response: str) -> pd.DataFrame:
    return usable.groupby([coded_column(a), coded_column(b)])[response].mean().unstack()


def shared_range(usable: pd.DataFrame, names: list[str], response: str) -> tuple[float, float]:
    """One y-range for every main-effect and interaction panel of ``response``: the extremes of
    the level means and of the two-factor cell means, padded by 10%."""
    values = [usable[response].mean()]
    for name in names:
        values += list(usable.groupby(coded_column(name))[response].mean())
    for a, b in combinations(names, 2):
        values += list(_cell_means(usable, a, b, response).to_numpy().ravel())
    finite = np.array([v for v in values if np.isfinite(v)], dtype=float)
    low, high = float(finite.min()), float(finite.max())
    pad = 0.1 * (high - low) if high > low else max(abs(high) * 0.05, 1e-9)
    return low - pad, high + pad


def main_effects(
    usable: pd.DataFrame,
    trials: pd.DataFrame,
    names: list[str],
    response: str,
    directory: Path,
    ylim: tuple[float, float],
    not_enforced: Collection[str] = (),
) -> str:
    """Save :func:`main_effects_figure` as ``main_effects_<response>``; the PNG's name."""
    fig = main_effects_figure(usable, trials, names, response, ylim, not_enforced)
    return save(fig, directory, f"main_effects_{response}")


def main_effects_figure(
    usable: pd.DataFrame,
    trials: pd.DataFrame,
    names: list[str],
    response: str,
    ylim: tuple[float, float],
    not_enforced: Collection[str] = (),
) -> Figure:
    """The mean of ``response`` at each level of each factor, the grand mean dashed; a factor
    in ``not_enforced`` is titled so (its levels were not distinguishably enforced)."""
    fig, axes = grid(len(names), 2.6, 2.4, sharey=True)
    grand = usable[response].mean()
    for ax, name in zip(axes, names, strict=True):
        levels = level_labels(trials, name)
        means = usable.groupby(coded_column(name))[response].mean().reindex(list(levels))
        ax.plot(range(len(levels)), means.to_numpy(), marker="o", color="tab:blue")
        ax.axhline(grand, color="grey", lw=0.8, ls="--")
        level_ticks(ax, list(levels.values()))
        if name in not_enforced:
            ax.set_title(f"{name}\n({NOT_ENFORCED})", fontsize=9, color="darkred")
        else:
            ax.set_title(name, fontsize=9)
        ax.set_ylim(*ylim)
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(label(response), fontsize=8)
    titled(fig, f"Main effects on {label(response)}: mean at each level (dashed: grand mean)")
    return fig


@dataclass(frozen=True)
class InteractionPlot:
    """The figure's PNG (None when no panel is drawn) and the pairs left out, with why."""

    figure: str | None
    left_out: list[PairAliasing]


def interactions(
    usable: pd.DataFrame,
    trials: pd.DataFrame,
    factors: list[dict],
    response: str,
    directory: Path,
    ylim: tuple[float, float],
    *,
    aliased: bool = False,
) -> InteractionPlot:
    """Save :func:`interaction_figure` as ``interactions_<response>`` when it has panels."""
    fig, left_out = interaction_figure(usable, trials, factors, response, ylim, aliased=aliased)
    if fig is None:
        return InteractionPlot(None, left_out)
    return InteractionPlot(save(fig, directory, f"interactions_{response}"), left_out)


def interaction_figure(
    usable: pd.DataFrame,
    trials: pd.DataFrame,
    factors: list[dict],
    response: str,
    ylim: tuple[float, float],
    *,
    aliased: bool = False,
) -> tuple[Figure | None, list[PairAliasing]]:
    """One panel per pair of factors: the mean of ``response`` at each level of the first,
    one line per level of the second. Pairs aliased with a main effect are drawn only when
    ``aliased``; pairs that are not estimable never are. Also returns the pairs left out."""
    aliasing = pair_aliasing(usable, factors)
    drawn = [p for p in aliasing.values() if p.estimable and (aliased or not p.with_main)]
    left_out = [p for p in aliasing.values() if p not in drawn]
    if not drawn:
        return None, left_out
    fig, axes = grid(len(drawn), 2.7, 2.9, sharey=True)
    for ax, info in zip(axes, drawn, strict=True):
        a, b = info.pair
        a_levels, b_levels = level_labels(trials, a), level_labels(trials, b)
        table = _cell_means(usable, a, b, response).reindex(index=list(a_levels))
        for i, (code, text) in enumerate(b_levels.items()):
            values = table[code].to_numpy() if code in table else np.full(len(a_levels), np.nan)
            ax.plot(range(len(a_levels)), values, marker="o", color=f"C{i}", label=text)
        level_ticks(ax, list(a_levels.values()))
        ax.set_xlabel(a, fontsize=8, labelpad=1)
        ax.set_title(f"{a} × {b}", fontsize=9, pad=14 if info.note else 6)
        if info.note:
            ax.annotate(
                info.note,
                xy=(0.5, 1.01),
                xycoords="axes fraction",
                ha="center",
                va="bottom",
                fontsize=7.5,
                color="darkred",
            )
        ax.set_ylim(*ylim)
        ax.legend(
            title=f"{b}:",
            fontsize=7,
            title_fontsize=7,
            ncol=len(b_levels),
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            frameon=False,
            alignment="left",
        )
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(label(response), fontsize=8)
    title = f"Interactions on {label(response)}: mean at each combination of two factors"
    if any(p.note for p in drawn):
        title += "\n(red: aliased; each panel shows the sum of its alias set)"
    titled(fig, title)
    return fig, left_out
