"""``trainbed analyze DIR``: the report folder, index.md and index.html, tables and figures.

Order of the page: a flag on factors whose levels were not enforced, the design (defining
relation, signed alias sets), the limits and the setup (``limits_section``), the trials that did not
succeed and the runs whose time-to-accuracy is censored (near the top, so they are never
missed), the responses with their units, then one section per response (``response_section``):
the type-3 ANOVA (``anova_<response>.csv``: term,sum_sq,df,F,PR(>F); the Residual row kept),
the effects (``effects_<response>.csv``: ``mean`` = q0 first, Jain's ``q`` and Montgomery's
``effect`` = 2q, 95% and 90% intervals of q, the allocation of variation with an ``Error`` row,
signed aliases, the ``unit``), LaTeX copies and the figures; then the derived responses and the
per-run figures. index.html is one self-contained page (``html_page``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from trainbed.analysis.models.aliases import defining_relation, estimable_terms
from trainbed.analysis.models.cost import COST
from trainbed.analysis.models.responses import (
    data_compute_share,
    iteration_model,
    time_to_accuracy,
    train_time_sum,
)
from trainbed.analysis.models.units import RESPONSES, label
from trainbed.analysis.plots import figures, run_plots
from trainbed.analysis.plots.energy_plots import energy_bars
from trainbed.analysis.reading.load import RESPONSE_FIELDS, UNREADABLE, Results, load
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.design_notes import blocks_text, is_screening, screening_text
from trainbed.analysis.reporting.energy_section import meters_section
from trainbed.analysis.reporting.html_page import render
from trainbed.analysis.reporting.limits_section import assess_limits
from trainbed.analysis.reporting.noise_section import assess_noise
from trainbed.analysis.reporting.pareto_section import tradeoff_section
from trainbed.analysis.reporting.quality import QUALITY_FILE, QualityOptions, trust_sections
from trainbed.analysis.reporting.queueing_section import queueing_section
from trainbed.analysis.reporting.recommendation_section import decision_sections
from trainbed.analysis.reporting.response_section import SectionOptions, fit_section
from trainbed.contract.goal import GoalSpec
from trainbed.contract.layout import ResultsLayout, coded_column


def _responses_to_fit(results: Results) -> list[str]:
    wanted = [r for r in results.responses if r in RESPONSE_FIELDS]  # cost: see write_report
    for response in RESPONSE_FIELDS:
        if response not in wanted and results.trials[response].notna().any():
            wanted.append(response)
    return wanted


def _with_units(frame: pd.DataFrame) -> pd.DataFrame:
    """Response columns renamed to their labels with units (``time`` -> ``time (s)``)."""
    return frame.rename(columns={c: label(c) for c in frame.columns if c in RESPONSES})


def _design(results: Results) -> str:
    trials, names = results.trials, results.factor_names
    design = results.campaign.spec.design
    text = (
        f"Design: {design.type}, {len(trials)} trials, "
        f"{design.replicates} replicate(s); factors (levels low / high as written): "
        + ", ".join(f"{f['name']} ({' / '.join(map(str, f['levels']))})" for f in results.factors)
        + ".\n"
    )
    if not results.factors or not all(len(f["levels"]) == 2 for f in results.factors):
        return text
    if is_screening(results.campaign):
        return (
            text
            + screening_text(results.campaign, trials, names)
            + blocks_text(results.campaign, trials, names)
        )
    text += blocks_text(results.campaign, trials, names)
    points = np.unique(trials[[coded_column(n) for n in names]].to_numpy(dtype=int), axis=0)
    words = defining_relation(points, names)
    text += (
        f"\n{len(points)} distinct design points. Defining relation: I"
        + "".join(f" = {w.lstrip('+')}" if w[0] == "+" else f" = {w}" for w in words)
        + ("" if words else " (full factorial: nothing aliased)")
        + ".\n"
    )
    aliased = [t for t in estimable_terms(points, names) if t.aliases]
    if aliased:
        text += (
            "\nAlias sets (a minus sign: the column is the opposite): "
            + "; ".join(
                "{" + " = ".join([t.name, *t.alias_text.split(" = ")]) + "}" for t in aliased
            )
            + ".\n"
        )
    return text


def _target(results: Results) -> float | None:
    target = results.campaign.spec.trial.workload.target_accuracy
    return None if target is None else float(target.threshold)


def _unreadable(results: Results) -> str:
    """The trials whose record exists but did not validate: each with the file, the field and
    what was wrong, as ``analyze`` printed them. They are left out of everything below."""
    if not results.unreadable:
        return ""
    frame = pd.DataFrame(
        [
            {"trial_id": u.trial_id, "file": u.file, "field": u.field or "—", "problem": u.problem}
            for u in results.unreadable
        ]
    )
    return (
        "\n## Trials that could not be read\n\n"
        f"{len(frame)} of {len(results.trials)} trials have a record that does not hold what the "
        "contract says (docs/worker-outputs.md). They are left out of every table and fit "
        "below; the other trials are analysed.\n\n" + tables.markdown(frame)
    )


def _problems(results: Results) -> str:
    """The trials that did not succeed, and the succeeded runs that never reached the target."""
    trials, names = results.trials, results.factor_names
    text = _unreadable(results)
    not_ok = trials[~trials["status"].isin(["succeeded", UNREADABLE])]
    text += "\n## Trials that did not succeed\n\n"
    text += tables.markdown(not_ok[["trial_id", "run_order", *names, "status", "reason"]])
    if len(not_ok):
        text += (
            f"\n{len(not_ok)} of {len(trials)} trials are left out of the fits below; "
            "the design is unbalanced where they are missing.\n"
        )
    for note in results.warnings:
        text += f"- warning: {note}\n"
    if not (trials["status"] == "succeeded").any():
        text += "\n**No trial succeeded: there is nothing to fit.** See the table above.\n"
    target = _target(results)
    if target is not None:
        censored = trials[(trials["status"] == "succeeded") & trials["time_to_accuracy"].isna()]
        columns = ["trial_id", *names, "epochs_run", "best_accuracy"]
        text += (
            f"\n## Censored runs: target accuracy {target:g} never reached\n\n"
            "Succeeded runs whose `time_to_accuracy_s` is null (and so their "
            "`energy_to_accuracy_j`): censored, never counted as 0.\n\n"
            + tables.markdown(_with_units(censored[[c for c in columns if c in censored]]))
        )
    return text


def _responses_table(results: Results) -> str:
    rows = [
        {
            "response": name,
            "unit": RESPONSES[name].unit,
            "result.json field": f"`{field}`",
            "what it measures": RESPONSES[name].description,
        }
        for name, field in RESPONSE_FIELDS.items()
    ]
    return (
        "\n## Responses and units\n\n"
        "Effects are reported as Jain's q (half the change from the low to the high level) "
        "and as Montgomery's effect = 2q (the whole change), in the response's unit.\n\n"
        + tables.markdown(pd.DataFrame(rows))
    )


def _derived(results: Results, out: Path) -> str:
    trials, names = results.trials, results.factor_names
    derived = trials[["trial_id", *names, "status", "accuracy", "time", "train_time"]].merge(
        train_time_sum(results.epochs).reset_index(), on="trial_id", how="left"
    )
    derived = derived.merge(data_compute_share(results.iterations), on="trial_id", how="left")
    tables.write(out, "derived", derived)
    text = (
        "\n## Derived responses\n\nPer trial: the wall time, the train time, the sum of its "
        "per-epoch train durations recomputed from the epoch records (`train_time_sum_s`), and "
        "the data-loading share of step time (`derived.csv`):\n\n"
        + tables.markdown(_with_units(derived))
    )
    validation = (
        trials.set_index("trial_id")["validation_time_s"]
        if "validation_time_s" in trials
        else pd.Series(dtype=float)
    )
    model = iteration_model(results.iterations, validation)
    tables.write(out, "iteration_model", model)
    return text + (
        "\nIteration-time model (the iteration-time study): β = (first iteration + validation) "
        "/ rest "
        "(unitless), TMiAvg and its early estimates in seconds (`iteration_model.csv`):\n\n"
        + tables.markdown(model)
    )


def write_report(
    results_dir: Path,
    out: Path | None = None,
    log_responses: list[str] | None = None,
    tta_thresholds: list[float] | None = None,
    *,
    aliased_interactions: bool = False,
    quality: QualityOptions | None = None,
    goal: GoalSpec | None = None,
) -> Path:
    """Analyse ``results_dir`` and write the report; returns the report folder.

    ``aliased_interactions`` also draws the interaction panels that a resolution III design
    aliases with main effects (each labelled with its alias). ``goal`` (``--goal``) overrides
    the campaign's ``spec.goal`` in the Recommendation section."""
    results = load(results_dir)
    out = Path(out) if out else ResultsLayout(Path(results_dir)).report_dir
    held = assess_limits(results.campaign, results.factors, results.trials, results.records)
    opts = SectionOptions(out, aliased_interactions, not_enforced=held.flagged)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [*opts.figures.glob("*.png"), *opts.figures.glob("*.svg")]:
        stale.unlink()  # figures of an earlier run that this one may not redraw
    # the noise guard near the top (quality.py); with --exclude-noisy the fits lose its flagged
    quality = quality or QualityOptions()
    noise = assess_noise(results, quality.noise, out)
    md = [f"# {results.name}: analysis\n\n", held.banner(), _design(results), held.markdown()]
    md += [_problems(results)]
    md += [meters_section(results.trials, results.factor_names, results.responses), noise.markdown]
    md.append(queueing_section(results.trials))
    results = noise.results
    trials = results.trials
    names = results.factor_names
    md.append(_responses_table(results))
    md.append(decision_sections(results, goal, out))

    thresholds = list(tta_thresholds or [])
    target = _target(results)
    if target is not None and target not in thresholds:
        thresholds.insert(0, target)
    tta_frames = [time_to_accuracy(results.epochs, t) for t in thresholds]
    tta = pd.concat(tta_frames, ignore_index=True) if tta_frames else pd.DataFrame()

    responses = _responses_to_fit(results)
    fits = {}
    for response in responses:
        fits[response] = fit_section(results, response, False, opts, md)
    if trials[COST].notna().any():
        source = "spec.cost's prices × each rank's requests and run time, + measured energy"
        fits[COST] = fit_section(results, COST, False, opts, md, source=source)
    for threshold in tta_thresholds or []:
        column = f"time_to_accuracy_{threshold:g}"
        at = tta[tta["threshold"] == threshold].set_index("trial_id")["time_to_accuracy_s"]
        trials[column] = trials["trial_id"].map(at).where(trials["status"] == "succeeded")
        source = f"validation accuracy >= {threshold:g} in its epoch curve"
        fit_section(results, column, False, opts, md, source=source)
    for response in RESPONSE_FIELDS:
        if response not in responses:
            md.append(
                f"\n## {label(response)}\n\nNot measured: no trial recorded "
                f"`{RESPONSE_FIELDS[response]}`.\n"
            )
    for response in log_responses or []:
        if response not in RESPONSE_FIELDS:
            md.append(
                f"\n`--log {response}`: unknown response (choose from "
                f"{', '.join(RESPONSE_FIELDS)}).\n"
            )
            continue
        fit_section(results, response, True, opts, md)

    md.append(tradeoff_section(results, out))
    md.append(trust_sections(results, fits, noise, quality, out))
    held.write_json(out / QUALITY_FILE)
    md.append(_derived(results, out))
    md.append("\n## Per-run figures\n")
    if not tta.empty:
        tables.write(out, "time_to_accuracy", tta)
        md.append(
            "\nTime to accuracy at each threshold, in seconds (NaN = censored: never reached; "
            "`time_to_accuracy.csv`):\n\n" + tables.markdown(tta)
        )
        first = tta[tta["threshold"] == thresholds[0]]
        bars = run_plots.tta_bars(first, trials, names, thresholds[0], opts.figures)
        if bars:
            md.append(f"\n![time to accuracy](figures/{bars})\n")
    energy = energy_bars(trials, names, opts.figures)
    if energy:
        md.append(f"\n![energy to accuracy](figures/{energy})\n")
    curves = run_plots.learning_curves(results.epochs, trials, names, opts.figures)
    if curves:
        md.append(f"\n![learning curves](figures/{curves})\n")
    columns = [coded_column(n) for n in names] + [r for r in RESPONSE_FIELDS if r in trials]
    heat = figures.correlation(trials, columns, opts.figures)
    if heat:
        md.append(f"\n![correlation](figures/{heat})\n")

    text = "".join(md)
    (out / "index.md").write_text(text)
    (out / "index.html").write_text(render(text, f"{results.name}: analysis", out))
    return out
