"""``trainbed analyze DIR``: the report folder, index.md and index.html, tables and figures.

For each response the campaign names (and each other standard response with data): the type-3
ANOVA table (``anova_<response>.csv``: term,sum_sq,df,F,PR(>F); the intercept row is left out,
the Residual row kept), the effects with 95% intervals and the allocation of variation
(``effects_<response>.csv``: term,effect,ci95_low,ci95_high,variation_pct,aliases, with an
``Error`` row so the shares add up), 90% intervals in the Markdown, LaTeX copies, and the
figures. Failed and missing trials are listed, an unbalanced design is named, and a
time-to-accuracy that was never reached counts as censored, never as zero.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.analysis import figures
from trainbed.analysis.aliases import defining_relation, estimable_terms
from trainbed.analysis.anova import Fit, NotFittable, fit_response
from trainbed.analysis.load import RESPONSE_FIELDS, Results, load
from trainbed.analysis.responses import (
    accuracy_per_second,
    data_compute_share,
    iteration_model,
    time_to_accuracy,
    train_time_sum,
)
from trainbed.contract.layout import ResultsLayout, coded_column


def _table(frame: pd.DataFrame, floatfmt: str = ".4g") -> str:
    if frame.empty:
        return "_(none)_\n"
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = []
        for value in row:
            if isinstance(value, float):
                cells.append("" if np.isnan(value) else format(value, floatfmt))
            else:
                cells.append(str(value).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _write_tables(out: Path, stem: str, frame: pd.DataFrame) -> None:
    frame.to_csv(out / f"{stem}.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (out / f"{stem}.tex").write_text(
            frame.to_latex(index=False, float_format="%.4g", na_rep="")
        )


def _responses_to_fit(results: Results) -> list[str]:
    wanted = list(results.responses)
    for response in RESPONSE_FIELDS:
        if response not in wanted and results.trials[response].notna().any():
            wanted.append(response)
    return wanted


#: A censored time-to-accuracy is fitted on the runs that reached the target only while at most
#: this share of the succeeded runs is censored (and every design point keeps a run).
MAX_CENSORED_SHARE = 0.25


def _censoring(trials: pd.DataFrame, response: str, names: list[str]) -> tuple[str, bool]:
    """What the report says about censored runs, and whether the rest may still be fitted."""
    succeeded = trials["status"] == "succeeded"
    censored = int((succeeded & trials[response].isna()).sum())
    total = int(succeeded.sum())
    if not censored:
        return "", True
    reached = trials[succeeded & trials[response].notna()]
    points = [coded_column(n) for n in names]
    all_points = len(reached.groupby(points)) == len(trials.groupby(points))
    share = censored / total if total else 1.0
    head = (
        f"{censored} of {total} succeeded runs never reached the target: their "
        "time-to-accuracy is censored (not zero, not dropped silently). "
    )
    if share <= MAX_CENSORED_SHARE and all_points:
        return (
            head + f"With at most {MAX_CENSORED_SHARE:.0%} censored and every design point "
            "still represented, the model below is fitted on the runs that reached it: read "
            "its effects as conditional on reaching the target (biased toward the faster "
            "settings).\n",
            True,
        )
    why = (
        f"more than {MAX_CENSORED_SHARE:.0%} are censored"
        if share > MAX_CENSORED_SHARE
        else "some design points have no run that reached it"
    )
    return head + f"No ANOVA is fitted: {why}, so the fit would be biased; see the bars.\n", False


def _fit_section(
    results: Results,
    response: str,
    log: bool,
    out: Path,
    figs: Path,
    md: list[str],
    source: str | None = None,
) -> Fit | None:
    trials = results.trials
    names = results.factor_names
    title = f"log({response})" if log else response
    md.append(f"\n## {title}\n")
    values = trials[response]
    succeeded = trials["status"] == "succeeded"
    source = source or f"`{RESPONSE_FIELDS[response]}`"
    threshold_column = response.startswith("time_to_accuracy_")
    if not values[succeeded].notna().any() and not threshold_column:
        why = {
            "energy": "nothing could measure it here",
            "time_to_accuracy": "no target was set, or no run reached it",
        }.get(response, "the runs did not produce it")
        md.append(f"Not measured: no succeeded trial recorded {source} ({why}).\n")
        return None
    if response.startswith("time_to_accuracy"):
        text, fittable = _censoring(trials, response, names)
        md.append(text)
        if not fittable:
            return None
    try:
        fit = fit_response(trials, results.factors, response, log=log)
    except NotFittable as err:
        md.append(f"Not fitted: {err}.\n")
        return None
    stem = f"{response}_log" if log else response
    _write_tables(out, f"anova_{stem}", fit.anova)
    _write_tables(out, f"effects_{stem}", fit.effects)
    md.append(
        f"{fit.n} runs, R² = {fit.r2:.4f}, adjusted R² = {fit.adj_r2:.4f}, "
        f"error df = {fit.df_resid}.\n"
    )
    for note in fit.notes:
        md.append(f"- {note}\n")
    if fit.suggestion:
        md.append(f"- transform: {fit.suggestion}\n")
    md.append("\n**Type-3 ANOVA** (`anova_" + stem + ".csv`)\n\n" + _table(fit.anova))
    effects = fit.effects.merge(fit.effects90, on="term", how="left")
    md.append(
        "\n**Effects (Jain's q_i), confidence intervals and allocation of variation** "
        f"(`effects_{stem}.csv`)\n\n" + _table(effects)
    )
    if fit.shapiro is not None:
        w, p = fit.shapiro
        verdict = (
            "no evidence against normal residuals"
            if p >= 0.05
            else "residuals look non-normal: consider a transform"
        )
        md.append(f"\nShapiro-Wilk on the residuals: W = {w:.4f}, p = {p:.4g} ({verdict}).\n")
    shown = []
    usable = trials[succeeded & values.notna()]
    shown.append(figures.main_effects(usable, names, response, figs))
    inter = figures.interactions(usable, names, response, figs)
    if inter:
        shown.append(inter)
    shown.append(figures.pareto(fit, figs))
    shown.append(figures.half_normal(fit, figs))
    shown.append(figures.residuals(fit, figs))
    md.append("\n" + "\n".join(f"![{name}](figures/{name})" for name in shown) + "\n")
    return fit


def write_report(
    results_dir: Path,
    out: Path | None = None,
    log_responses: list[str] | None = None,
    tta_thresholds: list[float] | None = None,
) -> Path:
    """Analyse ``results_dir`` and write the report; returns the report folder."""
    import markdown

    results = load(results_dir)
    out = Path(out) if out else ResultsLayout(Path(results_dir)).report_dir
    figs = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    trials = results.trials
    names = results.factor_names
    md = [f"# {results.name}: analysis\n"]
    spec = results.campaign.get("spec", {})
    design = spec.get("design", {})
    md.append(
        f"Design: {design.get('type', '?')}, {len(trials)} trials, "
        f"{design.get('replicates', 1)} replicate(s); factors: "
        + ", ".join(f"{f['name']} ({' / '.join(map(str, f['levels']))})" for f in results.factors)
        + ".\n"
    )

    factors = results.factors
    if factors and all(len(f["levels"]) == 2 for f in factors):
        coded = trials[[coded_column(n) for n in names]].to_numpy(dtype=int)
        points = np.unique(coded, axis=0)
        words = defining_relation(points, names)
        md.append(
            f"\n{len(points)} distinct design points. Defining relation: I"
            + "".join(f" = {w.lstrip('+')}" if w[0] == "+" else f" = -{w[1:]}" for w in words)
            + ("" if words else " (full factorial: nothing aliased)")
            + ".\n"
        )
        aliased = [t for t in estimable_terms(points, names) if t.aliases]
        if aliased:
            md.append(
                "Alias sets: "
                + "; ".join(
                    "{" + " = ".join([t.name, *t.alias_text.split(" = ")]) + "}" for t in aliased
                )
                + ".\n"
            )

    not_ok = trials[trials["status"] != "succeeded"]
    md.append("\n## Trials that did not succeed\n\n")
    md.append(_table(not_ok[["trial_id", "run_order", *names, "status", "reason"]]))
    if len(not_ok):
        md.append(
            f"\n{len(not_ok)} of {len(trials)} trials are left out of the fits below; "
            "the design is unbalanced where they are missing.\n"
        )
    for note in results.warnings:
        md.append(f"- warning: {note}\n")
    if not (trials["status"] == "succeeded").any():
        md.append("\n**No trial succeeded: there is nothing to fit.** See the table above.\n")

    thresholds = list(tta_thresholds or [])
    spec_target = (spec.get("trial", {}).get("workload", {}) or {}).get("target_accuracy") or {}
    if spec_target.get("threshold") is not None and spec_target["threshold"] not in thresholds:
        thresholds.insert(0, float(spec_target["threshold"]))
    tta_frames = [time_to_accuracy(results.epochs, t) for t in thresholds]
    tta = pd.concat(tta_frames, ignore_index=True) if tta_frames else pd.DataFrame()

    responses = _responses_to_fit(results)
    for response in responses:
        _fit_section(results, response, False, out, figs, md)
    for threshold in tta_thresholds or []:
        column = f"time_to_accuracy_{threshold:g}"
        at = tta[tta["threshold"] == threshold].set_index("trial_id")["time_to_accuracy_s"]
        trials[column] = trials["trial_id"].map(at).where(trials["status"] == "succeeded")
        _fit_section(
            results,
            column,
            False,
            out,
            figs,
            md,
            source=f"validation accuracy >= {threshold:g} in its epoch curve",
        )
    for response in RESPONSE_FIELDS:
        if response not in responses:
            md.append(
                f"\n## {response}\n\nNot measured: no trial recorded "
                f"`{RESPONSE_FIELDS[response]}`.\n"
            )
    for response in log_responses or []:
        if response not in RESPONSE_FIELDS:
            md.append(
                f"\n`--log {response}`: unknown response (choose from "
                f"{', '.join(RESPONSE_FIELDS)}).\n"
            )
            continue
        _fit_section(results, response, True, out, figs, md)

    md.append("\n## Derived responses\n")
    derived = trials[["trial_id", *names, "status", "accuracy", "time"]].merge(
        train_time_sum(results.epochs).reset_index(), on="trial_id", how="left"
    )
    shares = data_compute_share(results.iterations)
    derived = derived.merge(shares, on="trial_id", how="left")
    _write_tables(out, "derived", derived)
    md.append(
        "\nTrain time as the sum of per-epoch durations, and the data-loading share of "
        "step time (`derived.csv`):\n\n" + _table(derived)
    )
    ranking = accuracy_per_second(trials[trials["status"] == "succeeded"])
    _write_tables(out, "accuracy_per_second", ranking)
    md.append(
        "\nAccuracy per second, best first (`accuracy_per_second.csv`):\n\n"
        + _table(ranking.head(15))
    )
    validation = (
        trials.set_index("trial_id")["validation_time_s"]
        if "validation_time_s" in trials
        else pd.Series(dtype=float)
    )
    model = iteration_model(results.iterations, validation)
    _write_tables(out, "iteration_model", model)
    md.append(
        "\nIteration-time model (seed 002): β = (first iteration + validation) / rest, "
        "TMiAvg and its early estimates (`iteration_model.csv`):\n\n" + _table(model)
    )

    if not tta.empty:
        _write_tables(out, "time_to_accuracy", tta)
        md.append(
            "\nTime to accuracy at each threshold (NaN = censored: never reached):\n\n"
            + _table(tta)
        )
        bars = figures.tta_bars(tta[tta["threshold"] == thresholds[0]], figs)
        if bars:
            md.append(f"\n![time to accuracy](figures/{bars})\n")
    curves = figures.learning_curves(results.epochs, trials, names, figs)
    if curves:
        md.append(f"\n![learning curves](figures/{curves})\n")
    heat = figures.correlation(
        trials, [coded_column(n) for n in names] + [r for r in RESPONSE_FIELDS if r in trials], figs
    )
    if heat:
        md.append(f"\n![correlation](figures/{heat})\n")

    text = "".join(md)
    (out / "index.md").write_text(text)
    html = markdown.markdown(text, extensions=["tables"])
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        f"{results.name}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:auto}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;"
        f"padding:2px 6px}}img{{max-width:100%}}</style></head><body>{html}</body></html>\n"
    )
    return out
