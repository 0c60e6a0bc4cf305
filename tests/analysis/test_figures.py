"""The report's figures say what they show: level names, one y-scale, alias notes, signed effects
with their significance lines, labels that do not overlap, censored runs never drawn as zero,
every trial's curve. The figures are inspected as matplotlib objects before they are saved."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.text import Annotation, Text
from scipy import stats

from trainbed.analysis.models import units
from trainbed.analysis.models.anova import fit_response
from trainbed.analysis.plots import effect_plots, factor_plots, run_plots
from trainbed.analysis.reporting import tables

LEVELS = {
    "batch_size": ["16", "64"],
    "lr": ["0.02", "0.1"],
    "cpu": ["500m", "1"],  # written low first: "1" must not come before "500m"
    "memory": ["1.5Gi", "3Gi"],
}


def _trials(points: Iterable[tuple[int, ...]], names: list[str], y, replicates: int = 1):
    """A trials frame as ``load`` gives it, for the design ``points`` (±1 per name)."""
    rows = []
    rng = np.random.default_rng(0)
    for _rep, point in itertools.product(range(replicates), list(points)):
        row = {"trial_id": f"t{len(rows):03d}", "run_order": len(rows) + 1, "status": "succeeded"}
        for name, code in zip(names, point, strict=True):
            row[f"{name}_coded"] = int(code)
            levels = LEVELS.get(name, ["lo", "hi"])
            row[name] = levels[(int(code) + 1) // 2]
        row["time"] = float(y(dict(zip(names, point, strict=True)))) + rng.normal(0, 0.05)
        rows.append(row)
    return pd.DataFrame(rows)


def _factors(names: list[str]) -> list[dict]:
    return [{"name": n, "levels": LEVELS.get(n, ["lo", "hi"])} for n in names]


def _half_fraction(sign: int) -> list[tuple[int, int, int]]:
    """2^(3-1) with cpu = sign · batch_size · lr: the quickstart's design when sign = +1."""
    return [(a, b, sign * a * b) for a, b in itertools.product([-1, 1], repeat=2)]


QUICK = ["batch_size", "lr", "cpu"]


@pytest.mark.parametrize(("sign", "word"), [(1, "cpu"), (-1, "-cpu")])
def test_resolution_iii_pairs_are_aliased_with_a_signed_main_effect(sign: int, word: str) -> None:
    trials = _trials(_half_fraction(sign), QUICK, lambda x: 5 + x["cpu"])
    aliasing = factor_plots.pair_aliasing(trials, _factors(QUICK))
    pair = aliasing[("batch_size", "lr")]
    assert pair.with_main and pair.words == (word,)
    assert pair.note == f"aliased with {word}"


def test_resolution_iv_pairs_are_aliased_with_pairs_and_a_full_factorial_with_nothing() -> None:
    names = ["batch_size", "lr", "cpu", "memory"]
    half = [p + (p[0] * p[1] * p[2],) for p in itertools.product([-1, 1], repeat=3)]
    aliasing = factor_plots.pair_aliasing(_trials(half, names, lambda x: 1.0), _factors(names))
    assert aliasing[("batch_size", "lr")].words == ("cpu:memory",)
    assert not any(p.with_main for p in aliasing.values())
    full = list(itertools.product([-1, 1], repeat=3))
    plain = factor_plots.pair_aliasing(_trials(full, QUICK, lambda x: 1.0), _factors(QUICK))
    assert all(p.note == "" for p in plain.values())


def _texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_resolution_iii_interactions_are_drawn_only_on_request_and_then_say_so() -> None:
    trials = _trials(_half_fraction(1), QUICK, lambda x: 5 + x["cpu"], replicates=2)
    ylim = factor_plots.shared_range(trials, QUICK, "time")
    fig, left_out = factor_plots.interaction_figure(trials, trials, _factors(QUICK), "time", ylim)
    assert fig is None and len(left_out) == 3
    fig, left_out = factor_plots.interaction_figure(
        trials, trials, _factors(QUICK), "time", ylim, aliased=True
    )
    assert fig is not None and left_out == []
    notes = [t for t in _texts(fig) if t.startswith("aliased with")]
    assert sorted(notes) == ["aliased with batch_size", "aliased with cpu", "aliased with lr"]


def test_panels_share_one_y_range_and_show_the_levels_as_written() -> None:
    full = list(itertools.product([-1, 1], repeat=3))
    trials = _trials(full, QUICK, lambda x: 10 + 3 * x["cpu"] + 0.2 * x["lr"], replicates=2)
    ylim = factor_plots.shared_range(trials, QUICK, "time")
    mains = factor_plots.main_effects_figure(trials, trials, QUICK, "time", ylim)
    inter, _ = factor_plots.interaction_figure(trials, trials, _factors(QUICK), "time", ylim)
    assert inter is not None
    axes = [ax for fig in (mains, inter) for ax in fig.axes if ax.get_visible()]
    assert len(axes) == 3 + 3
    for ax in axes:
        assert ax.get_ylim() == pytest.approx(ylim)
    ticks = {ax.get_title(): [t.get_text() for t in ax.get_xticklabels()] for ax in mains.axes}
    assert ticks == {"batch_size": ["16", "64"], "lr": ["0.02", "0.1"], "cpu": ["500m", "1"]}
    legend = inter.axes[1].get_legend()  # batch_size × cpu: one line per cpu level, low first
    assert legend.get_title().get_text() == "cpu:"
    assert [t.get_text() for t in legend.get_texts()] == ["500m", "1"]
    assert "time (s)" in mains.get_suptitle() and "time (s)" in inter.get_suptitle()
    assert mains.axes[0].get_ylabel() == "time (s)"
    means = trials.groupby("cpu_coded")["time"].mean().to_numpy()
    assert ylim[0] < means.min() and means.max() < ylim[1]


def _twelve_factor_design() -> tuple[list[str], list[tuple[int, ...]]]:
    """A 2^(12-7) of resolution IV: five base factors, seven generated by three-letter words."""
    names = [f"f{i}" for i in range(12)]
    words = [(0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3), (0, 1, 4), (0, 2, 4), (1, 2, 4)]
    points = []
    for base in itertools.product([-1, 1], repeat=5):
        points.append(tuple(base) + tuple(int(np.prod([base[i] for i in w])) for w in words))
    return names, points


def test_twelve_factors_stay_readable_in_a_grid() -> None:
    names, points = _twelve_factor_design()
    trials = _trials(points, names, lambda x: 100 + 3 * x["f0"])
    ylim = factor_plots.shared_range(trials, names, "time")
    inter, _ = factor_plots.interaction_figure(trials, trials, _factors(names), "time", ylim)
    assert inter is not None
    shown = [ax for ax in inter.axes if ax.get_visible()]
    assert len(shown) == 66
    width, _ = inter.get_size_inches() * inter.dpi
    assert width <= 6 * 2.7 * inter.dpi + 1  # at most 6 panels a row, not 66 in one row
    notes = [t for t in _texts(inter) if t.startswith("aliased with")]
    assert len(notes) == 66, "in this design every two-factor interaction has an alias"
    mains = factor_plots.main_effects_figure(trials, trials, names, "time", ylim)
    rows = {round(ax.get_position().y0, 3) for ax in mains.axes if ax.get_visible()}
    assert len(rows) == 2


def _filtration_fit():
    """Montgomery's 2^(4-1) filtration data (test_textbook): unreplicated, saturated."""
    rates = {(-1, -1, -1, -1): 45, (1, -1, -1, 1): 100, (-1, 1, -1, 1): 45, (1, 1, -1, -1): 65}
    rates |= {(-1, -1, 1, 1): 75, (1, -1, 1, -1): 60, (-1, 1, 1, -1): 80, (1, 1, 1, 1): 96}
    names = ["A", "B", "C", "D"]
    trials = _trials(rates, names, lambda x: rates[tuple(x.values())])
    return fit_response(trials, _factors(names), "time")


def _vertical_lines(fig: Figure) -> dict[str, float]:
    out = {}
    for line in fig.axes[0].get_lines():
        xs = line.get_xdata()
        if len(xs) == 2 and xs[0] == xs[1] and xs[0] > 0:
            out[line.get_label()] = float(xs[0])
    return out


def test_pareto_of_an_unreplicated_design_has_signed_bars_and_lenth_lines() -> None:
    fit = _filtration_fit()
    fig = effect_plots.pareto_figure(fit)
    bars = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    widths = sorted(round(b.get_width(), 6) for b in bars)
    q = fit.effects.set_index("term").drop(["mean", "Error"])["q"]
    assert widths == sorted(round(v, 6) for v in q)
    assert min(widths) < 0, "AC is negative: its bar points left"
    m, pse = 7, fit.lenth_pse
    me = stats.t.ppf(0.975, m / 3) * pse
    sme = stats.t.ppf((1 + 0.95 ** (1 / m)) / 2, m / 3) * pse
    lines = _vertical_lines(fig)
    assert [v for k, v in lines.items() if k.startswith("Lenth ME")] == [pytest.approx(me)]
    assert [v for k, v in lines.items() if k.startswith("Lenth SME")] == [pytest.approx(sme)]
    assert "time (s)" in fig.axes[0].get_title() and "(s)" in fig.axes[0].get_xlabel()


def test_pareto_of_a_replicated_design_has_the_t_critical_value() -> None:
    full = list(itertools.product([-1, 1], repeat=3))
    trials = _trials(full, QUICK, lambda x: 10 + 3 * x["cpu"], replicates=3)
    fit = fit_response(trials, _factors(QUICK), "time")
    s_q = fit.effects.set_index("term").loc["cpu", "q_se"]
    lines = _vertical_lines(effect_plots.pareto_figure(fit))
    (value,) = lines.values()
    assert value == pytest.approx(stats.t.ppf(0.975, fit.df_resid) * s_q)


def test_half_normal_labels_do_not_overlap_and_the_reference_line_is_drawn() -> None:
    names, points = _twelve_factor_design()
    rng = np.random.default_rng(4)
    trials = _trials(points, names, lambda x: 100 + 3 * x["f0"] + 2 * x["f1"] + rng.normal())
    fit = fit_response(trials, _factors(names), "time")
    fig = effect_plots.half_normal_figure(fit)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [Text.get_window_extent(a, renderer) for a in fig.findobj(Annotation)]
    assert len(boxes) == effect_plots.MAX_LABELS
    for one, other in itertools.combinations(boxes, 2):
        assert not one.overlaps(other), (one, other)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label().startswith("|q|")]
    x, y = line.get_data()
    assert y[1] / x[1] == pytest.approx(fit.lenth_pse)
    assert fig.axes[0].get_ylabel() == "|q| (s)"


@pytest.mark.parametrize(
    ("targets", "gap", "expected"),
    [
        ([1.0, 5.0], 1.0, [1.0, 5.0]),  # far apart: untouched
        ([1.0, 1.2, 1.3], 1.0, [1.0, 2.0, 3.0]),  # pushed up, in order
        ([3.0, 1.0], 1.0, [3.0, 1.0]),  # any order in, same order out
        ([9.5, 9.6], 1.0, [9.0, 10.0]),  # near the top: pushed down instead
    ],
)
def test_spread_keeps_labels_a_gap_apart(targets, gap, expected) -> None:
    placed = effect_plots.spread(np.array(targets), gap, 0.0, 10.0)
    assert placed.tolist() == pytest.approx(expected)


def test_time_to_accuracy_bars_never_draw_a_censored_run_as_zero() -> None:
    trials = _trials(_half_fraction(1), QUICK, lambda x: 0.0, replicates=2)
    reached = {0: 1.0, 4: 1.4, 1: 2.0}  # trials 0 and 4 share a configuration; 5 is censored
    tta = pd.DataFrame(
        {
            "trial_id": trials["trial_id"],
            "threshold": 0.95,
            "time_to_accuracy_s": [reached.get(i, np.nan) for i in range(len(trials))],
            "censored": [i not in reached for i in range(len(trials))],
        }
    )
    fig = run_plots.tta_figure(tta, trials, QUICK, 0.95)
    ax = fig.axes[0]
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if isinstance(p, Rectangle))
    assert heights == [1.2, 2.0], "one bar per configuration with a run that got there"
    texts = _texts(fig)
    assert "1 of 2\nnever reached" in texts and texts.count("never\nreached") == 2
    assert "0.95" in ax.get_title() and ax.get_ylabel() == "time to accuracy (s)"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "batch_size=16\nlr=0.02\ncpu=1"  # the fastest first, levels as written


def test_learning_curves_keep_level_order_and_every_run() -> None:
    trials = _trials([(-1,), (-1,), (1,), (1,)], ["cpu"], lambda x: 0.0)
    epochs = pd.DataFrame(
        [
            {"trial_id": t, "epoch": e, "val_accuracy": 0.5 + 0.1 * e}
            for t, last in zip(trials["trial_id"], [3, 1, 3, 3], strict=True)
            for e in range(1, last + 1)
        ]
    )
    fig = run_plots.learning_curves_figure(epochs, trials, ["cpu"])
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["500m (2 runs)", "1 (2 runs)"]
    thin = [path for c in ax.collections for path in c.get_segments()]
    assert len(thin) == 4, "every trial drawn, the one that stopped at epoch 1 too"
    assert sorted(len(path) for path in thin) == [1, 3, 3, 3]
    thick = [ln.get_xdata().tolist() for ln in ax.get_lines() if ln.get_linewidth() > 2]
    assert thick == [[1], [1, 2, 3]], "500m's mean stops where its shortest run stopped"
    assert ax.get_ylabel() == "validation accuracy (fraction)"


def test_units_and_noise_free_numbers() -> None:
    assert units.label("time") == "time (s)" and units.label("train_time") == "train_time (s)"
    assert units.label("throughput") == "throughput (samples/s)"
    assert (
        units.label("energy") == "energy (J)" and units.label("accuracy") == "accuracy (fraction)"
    )
    assert units.label("time_to_accuracy_0.9") == "time_to_accuracy_0.9 (s)"
    assert units.label("time", log=True) == "log(time) (log s)"
    assert "start-up" in units.info("time").description
    assert tables.number(0.0) == "0" and tables.number(float("nan")) == ""
