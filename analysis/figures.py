"""The report's figures, each saved as PNG and SVG. matplotlib's Agg backend: no display needed.

Main effects and interactions (seed 001), Pareto and half-normal plots of the effects, residual
diagnostics (vs predicted, normal Q-Q, vs run order), learning curves grouped by factor and the
correlation heatmap (seed 000), and time-to-accuracy bars (seed 004).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from trainbed.analysis.anova import Fit  # noqa: E402
from trainbed.contract.layout import coded_column


def _save(fig: plt.Figure, directory: Path, stem: str) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    names = []
    for suffix in ("png", "svg"):
        fig.savefig(directory / f"{stem}.{suffix}", dpi=110)
        names.append(f"{stem}.{suffix}")
    plt.close(fig)
    return names


def main_effects(trials: pd.DataFrame, factors: list[str], response: str, directory: Path) -> str:
    fig, axes = plt.subplots(
        1, len(factors), figsize=(3 * len(factors), 3), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], factors, strict=True):
        means = trials.groupby(coded_column(name))[response].mean()
        labels = trials.groupby(coded_column(name))[name].first()
        ax.plot(range(len(means)), means.to_numpy(), marker="o")
        ax.set_xticks(range(len(means)), [str(v) for v in labels.to_numpy()], rotation=20)
        ax.set_title(name)
    axes[0][0].set_ylabel(response)
    _save(fig, directory, f"main_effects_{response}")
    return f"main_effects_{response}.png"


def interactions(
    trials: pd.DataFrame, factors: list[str], response: str, directory: Path
) -> str | None:
    pairs = [(a, b) for i, a in enumerate(factors) for b in factors[i + 1 :]]
    if not pairs:
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(3 * len(pairs), 3), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs, strict=True):
        table = trials.groupby([coded_column(a), coded_column(b)])[response].mean().unstack()
        for column in table.columns:
            ax.plot(
                table.index.to_numpy(), table[column].to_numpy(), marker="o", label=f"{b}={column}"
            )
        ax.set_xlabel(f"{a} (coded)")
        ax.set_title(f"{a} x {b}", fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, directory, f"interactions_{response}")
    return f"interactions_{response}.png"


def pareto(fit: Fit, directory: Path) -> str:
    effects = fit.effects[fit.effects["term"] != "Error"].copy()
    effects["size"] = effects["effect"].abs()
    effects = effects.sort_values("size", ascending=False)
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(effects) + 1.5))
    ax.barh(effects["term"][::-1], effects["size"][::-1])
    ax.set_xlabel(f"|effect| on {fit.response}")
    ax.set_title("Pareto of effects")
    _save(fig, directory, f"pareto_{fit.response}")
    return f"pareto_{fit.response}.png"


def half_normal(fit: Fit, directory: Path) -> str:
    effects = fit.effects[fit.effects["term"] != "Error"]
    size = np.sort(np.abs(effects["effect"].to_numpy()))
    order = effects.assign(a=effects["effect"].abs()).sort_values("a")["term"].to_numpy()
    m = len(size)
    quantiles = stats.halfnorm.ppf((np.arange(1, m + 1) - 0.5) / m)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(quantiles, size)
    for q, s, label in zip(quantiles, size, order, strict=True):
        ax.annotate(label, (q, s), fontsize=7)
    ax.set_xlabel("half-normal quantile")
    ax.set_ylabel("|effect|")
    ax.set_title(f"half-normal plot: {fit.response}")
    _save(fig, directory, f"half_normal_{fit.response}")
    return f"half_normal_{fit.response}.png"


def residuals(fit: Fit, directory: Path) -> str:
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    axes[0].scatter(fit.fitted, fit.residuals)
    axes[0].axhline(0, color="grey", lw=0.8)
    axes[0].set(xlabel="predicted", ylabel="residual", title="residuals vs predicted")
    stats.probplot(fit.residuals.to_numpy(), dist="norm", plot=axes[1])
    axes[1].set_title("normal Q-Q")
    axes[2].scatter(fit.run_order, fit.residuals)
    axes[2].axhline(0, color="grey", lw=0.8)
    axes[2].set(xlabel="run order", ylabel="residual", title="residuals vs run order")
    _save(fig, directory, f"residuals_{fit.response}")
    return f"residuals_{fit.response}.png"


def learning_curves(
    epochs: pd.DataFrame, trials: pd.DataFrame, factors: list[str], directory: Path
) -> str | None:
    column = "val_accuracy" if "val_accuracy" in epochs else "accuracy per epoch"
    if epochs.empty or column not in epochs:
        return None
    merged = epochs.merge(trials[["trial_id", *factors]], on="trial_id")
    fig, axes = plt.subplots(
        1, len(factors), figsize=(3.5 * len(factors), 3), sharey=True, squeeze=False
    )
    for ax, name in zip(axes[0], factors, strict=True):
        for level, frame in merged.groupby(name):
            curve = frame.groupby("epoch")[column].mean()
            ax.plot(curve.index.to_numpy(), curve.to_numpy(), marker=".", label=str(level))
        ax.set(title=name, xlabel="epoch")
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation accuracy")
    _save(fig, directory, "learning_curves")
    return "learning_curves.png"


def tta_bars(tta: pd.DataFrame, directory: Path) -> str | None:
    if tta.empty:
        return None
    fig, ax = plt.subplots(figsize=(max(5, 0.25 * len(tta)), 3.5))
    values = tta["time_to_accuracy_s"].fillna(0).to_numpy()
    colours = ["tab:grey" if c else "tab:blue" for c in tta["censored"]]
    ax.bar(tta["trial_id"], values, color=colours)
    ax.set_ylabel("time to accuracy (s); grey = never reached")
    ax.tick_params(axis="x", rotation=90, labelsize=6)
    _save(fig, directory, "time_to_accuracy")
    return "time_to_accuracy.png"


def correlation(trials: pd.DataFrame, columns: list[str], directory: Path) -> str | None:
    numeric = trials[columns].apply(pd.to_numeric, errors="coerce").dropna(axis=1, how="all")
    numeric = numeric.loc[:, numeric.nunique() > 1]
    if numeric.shape[1] < 2:
        return None
    corr = numeric.corr()
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(corr), 0.8 + 0.6 * len(corr)))
    image = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(corr)), corr.columns, fontsize=7)
    for i in range(len(corr)):
        for j in range(len(corr)):
            ax.text(j, i, f"{corr.iat[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image)
    _save(fig, directory, "correlation")
    return "correlation.png"
