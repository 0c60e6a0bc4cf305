"""One response's section of the report: what it measures and in which unit, the censoring of a
time-to-accuracy, the ANOVA and effects tables (Markdown, CSV, LaTeX) and its figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from trainbed.analysis.models.anova import Fit, NotFittable, fit_response
from trainbed.analysis.models.fit_runs import (
    CENSORED,
    ENERGY_RESPONSES,
    is_censored_response,
    left_out,
    meter_reason,
    no_meter,
)
from trainbed.analysis.models.fit_runs import runs_note as fit_runs_note
from trainbed.analysis.models.limits import mark_effects
from trainbed.analysis.models.units import info, label, unit
from trainbed.analysis.plots import effect_plots, factor_plots, figures
from trainbed.analysis.reading.load import RESPONSE_FIELDS, Results
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.design_notes import dealiased_effects, is_screening
from trainbed.contract.layout import coded_column

#: A censored time-to-accuracy is fitted on the runs that reached the target only while at most
#: this share of the succeeded runs is censored (and every design point keeps a run).
MAX_CENSORED_SHARE = 0.25
#: how a reader asks for the interaction panels a resolution III design aliases with main effects
ALIASED_REQUEST = "`trainbed analyze --aliased-interactions`"


@dataclass(frozen=True)
class SectionOptions:
    """What the caller chose for every section."""

    out: Path
    aliased_interactions: bool = False
    #: factors whose levels were not distinguishably enforced (analysis.limits): their effect
    #: rows and figures say "not enforced"
    not_enforced: frozenset[str] = frozenset()

    @property
    def figures(self) -> Path:
        return self.out / "figures"


def censoring(trials: pd.DataFrame, response: str, names: list[str]) -> tuple[str, bool]:
    """What the report says about censored runs, and whether the rest may still be fitted.

    Only the runs that could have been measured count: an energy response's runs without a
    meter are not censored, they were never metered (``fit_runs``), and their design points
    are not asked to be represented."""
    reasons = left_out(trials, response)
    censored = int(reasons.eq(CENSORED).sum())
    eligible = reasons.isin(["", CENSORED])
    total = int(eligible.sum())
    if not censored:
        return "", True
    reached = trials[reasons.eq("")]
    points = [coded_column(n) for n in names]
    all_points = len(reached.groupby(points)) == len(trials[eligible].groupby(points))
    share = censored / total if total else 1.0
    metered = " with an energy meter" if response in ENERGY_RESPONSES else ""
    what = "energy-to-accuracy" if response in ENERGY_RESPONSES else "time-to-accuracy"
    head = (
        f"{censored} of {total} succeeded runs{metered} never reached the target: their "
        f"{what} is censored (not zero, not dropped silently). "
    )
    if share <= MAX_CENSORED_SHARE and all_points:
        return (
            head + f"With at most {MAX_CENSORED_SHARE:.0%} censored and every design point "
            "still represented, the model below is fitted on the runs that reached it: read "
            "its effects as conditional on reaching the target (biased toward the settings "
            "that reach it more easily).\n",
            True,
        )
    why = (
        f"more than {MAX_CENSORED_SHARE:.0%} are censored"
        if share > MAX_CENSORED_SHARE
        else "some design points have no run that reached it"
    )
    return (
        head + f"No ANOVA is fitted: {why}, so the fit would be biased; see the "
        f"{what} bars under Per-run figures.\n",
        False,
    )


def _figures(fit: Fit, results: Results, usable: pd.DataFrame, opts: SectionOptions) -> str:
    """The section's figures as Markdown, and notes on what was left out and why."""
    response, names = fit.response, results.factor_names
    lines, shown = [], []
    if fit.transform is None:
        ylim = factor_plots.shared_range(usable, names, response)
        shown.append(
            factor_plots.main_effects(
                usable, results.trials, names, response, opts.figures, ylim, opts.not_enforced
            )
        )
    if fit.transform is None and is_screening(results.campaign):
        lines.append("- no interaction panels: a screening design fits main effects only.\n")
    elif fit.transform is None:
        plot = factor_plots.interactions(
            usable,
            results.trials,
            results.factors,
            response,
            opts.figures,
            ylim,
            aliased=opts.aliased_interactions,
        )
        if plot.figure:
            shown.append(plot.figure)
        with_main = [p for p in plot.left_out if p.estimable]
        if with_main:
            lines.append(
                "- interaction panels not drawn, because each is aliased with a main effect "
                "(resolution III) and would show that main effect: "
                + "; ".join(f"{' × '.join(p.pair)} ({p.note})" for p in with_main)
                + f". Draw them with {ALIASED_REQUEST}.\n"
            )
        lost = [p for p in plot.left_out if not p.estimable]
        if lost:
            lines.append(
                "- interactions not estimable in these runs: "
                + ", ".join(" × ".join(p.pair) for p in lost)
                + ".\n"
            )
    shown.append(effect_plots.pareto(fit, opts.figures))
    shown.append(effect_plots.half_normal(fit, opts.figures))
    residual = figures.residuals(fit, opts.figures)
    if residual:
        shown.append(residual)
    else:
        lines.append("- no residual plots: the fit is saturated, every residual is 0.\n")
    return "".join(lines) + "\n" + "\n\n".join(f"![{n}](figures/{n})" for n in shown) + "\n"


def fit_section(
    results: Results,
    response: str,
    log: bool,
    opts: SectionOptions,
    md: list[str],
    source: str | None = None,
) -> Fit | None:
    """Append the section of ``response`` (of its log when ``log``) to ``md``; its fit or None."""
    trials = results.trials
    names = results.factor_names
    md.append(f"\n## {label(response, log=log)}\n\n")
    values = trials[response]
    succeeded = trials["status"] == "succeeded"
    source = source or f"`{RESPONSE_FIELDS[response]}`"
    md.append(f"_{info(response).description}_ (from {source}).\n\n")
    threshold_column = response.startswith("time_to_accuracy_")
    if not values[succeeded].notna().any() and not threshold_column:
        why = {
            "time_to_accuracy": "no target was set, or no run reached it",
            "energy_to_accuracy": "no target was set, no run reached it, or nothing metered it",
        }.get(response, "the runs did not produce it")
        if response in ENERGY_RESPONSES and response != "energy_to_accuracy":
            why = "nothing could measure it here"
        if response in ENERGY_RESPONSES and succeeded.any() and no_meter(trials[succeeded]).all():
            sources = sorted({meter_reason(s) for s in trials.loc[succeeded, "energy_source"]})
            why = "no trial had an energy meter: " + "; ".join(sources)
        md.append(f"Not measured: no succeeded trial recorded {source} ({why}).\n")
        return None
    if is_censored_response(response):
        text, fittable = censoring(trials, response, names)
        md.append(text)
        if not fittable:
            return None
    try:
        fit = fit_response(
            trials,
            results.factors,
            response,
            log=log,
            main_effects_only=is_screening(results.campaign),
        )
    except NotFittable as err:
        md.append(f"Not fitted: {err}.\n")
        return None
    fit.effects = mark_effects(fit.effects, opts.not_enforced)
    stem = f"{response}_log" if log else response
    u = unit(response, log=log)
    tables.write(opts.out, f"anova_{stem}", fit.anova)
    tables.write(opts.out, f"effects_{stem}", fit.effects.assign(unit=u))
    md.append(
        f"{fit.n} runs, R² = {fit.r2:.4f}, adjusted R² = {fit.adj_r2:.4f}, "
        f"error df = {fit.df_resid}. {fit_runs_note(trials, response)}\n\n"
    )
    for note in fit.notes:
        md.append(f"- {note}\n")
    if fit.suggestion:
        md.append(f"- transform: {fit.suggestion}\n")
    md.append(f"\n**Type-3 ANOVA** (`anova_{stem}.csv`)\n\n" + tables.anova_markdown(fit, u))
    md.append(
        f"\n**Effects and allocation of variation** (`effects_{stem}.csv`; q is Jain's q_i, "
        "effect = 2q Montgomery's; `mean` is q0)\n\n" + tables.effects_markdown(fit, u)
    )
    freed = dealiased_effects(results.campaign, trials, names, fit.effects)
    if not freed.empty:
        md.append(
            "\n**De-aliased by the fold-over** (aliased in block 1 alone; estimated apart in the "
            "combined design)\n\n" + tables.markdown(freed)
        )
    if fit.shapiro is not None:
        w, p = fit.shapiro
        verdict = (
            "no evidence against normal residuals"
            if p >= 0.05
            else "residuals look non-normal: consider a transform"
        )
        md.append(f"\nShapiro-Wilk on the residuals: W = {w:.4f}, p = {p:.4g} ({verdict}).\n")
    usable = trials[succeeded & values.notna()]
    md.append("\n" + _figures(fit, results, usable, opts))
    return fit
