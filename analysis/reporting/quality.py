"""The report's trust sections after the fits: robust summaries (and the log model where
Shapiro-Wilk rejects normality), the replicate advisor, the adjusted effects and predicted
against measured.

``report.py`` has two hooks: :func:`~trainbed.analysis.reporting.noise_section.assess_noise` right
after
loading (the Noise section near the top; it may leave flagged trials out of every fit, and says
so), and :func:`trust_sections` after the fits (it reads each response's plain fit for its
Shapiro-Wilk verdict). Both return Markdown; the numbers go into CSV files and
``quality.json``, which ``trainbed analyze --json`` prints.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from trainbed.analysis.models.adjusted import AdjustedFit, adjusted_fit, block_columns
from trainbed.analysis.models.advisor import Advice, Target, advise, parse_target
from trainbed.analysis.models.anova import Fit, NotFittable, fit_response
from trainbed.analysis.models.noise import NoisePolicy
from trainbed.analysis.models.pilot_check import (
    measured_span_s,
    median_abs_error,
    predicted_vs_measured,
)
from trainbed.analysis.models.robust import normality_advice, point_medians
from trainbed.analysis.reading.load import Results
from trainbed.analysis.reporting import tables
from trainbed.analysis.reporting.design_notes import is_screening
from trainbed.analysis.reporting.noise_section import NoiseAssessment
from trainbed.analysis.reporting.text import json_safe, records
from trainbed.contract.errors import UserError
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.pilot import read_pilot

QUALITY_FILE = "quality.json"
#: The advisor's target when none is requested: effects known to within 5% of the mean.
DEFAULT_TARGET = Target(0.05, relative=True)


@dataclass(frozen=True)
class QualityOptions:
    """What ``trainbed analyze`` was asked about noise, replicates and the pilot."""

    noise: NoisePolicy = field(default_factory=NoisePolicy)
    target: Target = DEFAULT_TARGET
    confidence: float = 0.95
    assurance: float = 0.90
    #: pilot.json to compare with (default: the results directory's own, when there is one)
    pilot: Path | None = None


def quality_options(
    *,
    exclude_noisy: bool = False,
    covariate: bool = False,
    block: str | None = None,
    noise_threshold: str = "20%",
    target_ci: str = "5%",
    confidence: float = 0.95,
    pilot: Path | None = None,
) -> QualityOptions:
    """The options from ``trainbed analyze``'s flags; a :class:`UserError` names a bad one."""
    if block not in (None, "node", "host"):
        raise UserError(f"--block: node or host, got {block!r}")
    if not 0 < confidence < 1:
        raise UserError(f"--confidence: a fraction in (0, 1), got {confidence:g}")
    threshold = parse_target(noise_threshold, "--noise-threshold")
    if not threshold.relative:
        raise UserError(f"--noise-threshold: a percentage such as 20%, got {noise_threshold!r}")
    if pilot is not None and not pilot.is_file():
        raise UserError(f"--pilot: {pilot} is not a file")
    return QualityOptions(
        noise=NoisePolicy(
            threshold=threshold.value, exclude=exclude_noisy, covariate=covariate, block=block
        ),
        target=parse_target(target_ci),
        confidence=confidence,
        pilot=pilot,
    )


def _effects_brief(fit: Fit) -> pd.DataFrame:
    """term, the coefficient and its 95% interval, whatever the fit calls those columns."""
    frame = fit.effects
    keep = ["term"]
    keep += [c for c in ("q", "effect") if c in frame][:1]
    keep += [c for c in frame.columns if "ci95" in c]
    return frame[keep].dropna(subset=keep[1:], how="all")


def trust_sections(
    results: Results,
    fits: dict[str, Fit | None],
    noise: NoiseAssessment,
    options: QualityOptions,
    out: Path,
) -> str:
    """Robust summaries, the advisor, adjusted effects and predicted against measured; also
    writes their CSVs and ``quality.json``."""
    md: list[str] = []
    data: dict[str, Any] = {"campaign": results.name, "noise": noise.data}
    fitted = [r for r, fit in fits.items() if fit is not None]

    md.append("\n## Robust summaries\n")
    md.append(
        f"\nPer design point: the median of the succeeded runs and its distribution-free "
        f"{options.confidence:.0%} interval from order statistics (with few runs the widest "
        "interval, [min, max], covers less: `confidence_pct` is what it achieves).\n"
    )
    robust: dict[str, Any] = {}
    for response in fitted:
        fit = fits[response]
        assert fit is not None
        table = point_medians(results.trials, results.factors, response, options.confidence)
        table.to_csv(out / f"robust_{response}.csv", index=False)
        values = results.trials[response].dropna()
        advice = normality_advice(fit.shapiro, bool(len(values)) and bool((values > 0).all()))
        md.append(f"\n### {response}\n\n")
        entry: dict[str, Any] = {"points": records(table), "shapiro": fit.shapiro}
        if advice:
            md.append(advice + "\n\n")
            entry["recommendation"] = advice
            try:
                log_fit = fit_response(
                    results.trials,
                    results.factors,
                    response,
                    log=True,
                    main_effects_only=is_screening(results.campaign),
                )
            except NotFittable as err:
                md.append(f"log({response}) not fitted: {err}.\n\n")
            else:
                md.append(
                    f"log({response}) model: {log_fit.n} runs, R² = {log_fit.r2:.4f}"
                    + (f", Shapiro-Wilk p = {log_fit.shapiro[1]:.3g}" if log_fit.shapiro else "")
                    + " (effects are on the log scale: exp(2q) is the high/low ratio)\n\n"
                    + tables.markdown(_effects_brief(log_fit))
                    + "\n"
                )
                entry["log_model"] = records(_effects_brief(log_fit))
        md.append(tables.markdown(table))
        robust[response] = entry
    data["robust"] = robust

    md.append("\n## Replicate advisor\n")
    advices = [
        advise(
            results.trials,
            results.factors,
            response,
            options.target,
            confidence=options.confidence,
            assurance=options.assurance,
        )
        for response in fitted
    ]
    md.append(_advisor_table(advices, options))
    data["advisor"] = [json_safe(a.as_dict()) for a in advices]

    adjusted = _adjusted(results, fitted, noise, options)
    if adjusted:
        md.append("\n## Adjusted effects\n")
        for response, found in adjusted.items():
            md.append(f"\n### {response}\n\n")
            if isinstance(found, str):
                md.append(f"Not fitted: {found}.\n")
                continue
            what = (
                "the calibration's deviation from its limit's median as a covariate"
                if found.kind == "covariate"
                else f"the {options.noise.block} as a block"
            )
            md.append(
                f"With {what} ({found.n} runs, error df = {found.df_resid}); `q_plain` is the "
                "coefficient without it.\n\n"
                + tables.markdown(found.effects)
                + "\n"
                + tables.markdown(found.extra)
            )
        data["adjusted"] = {
            r: (f if isinstance(f, str) else records(pd.concat([f.effects, f.extra])))
            for r, f in adjusted.items()
        }

    pilot_path = options.pilot or ResultsLayout(results.root).pilot_file
    pilot = read_pilot(pilot_path) if pilot_path.exists() else None
    data["prediction"] = None
    if pilot is not None:
        md.append(_prediction_table(results, pilot, pilot_path, out, data))

    (out / QUALITY_FILE).write_text(json.dumps(json_safe(data), indent=2) + "\n")
    return "".join(md)


def _advisor_table(advices: list[Advice], options: QualityOptions) -> str:
    rows = []
    for a in advices:
        rows.append(
            {
                "response": a.response,
                "mean": a.mean,
                "sigma": a.sigma,
                "sigma from": f"{a.sigma_source} (df {a.sigma_df:g})" if a.sigma_df else "",
                "replicates now": a.replicates_now,
                "widest half-width now": a.half_width_now,
                "target half-width": a.target_half_width,
                "replicates (expected)": a.replicates_expected,
                f"replicates ({a.assurance:.0%} assured)": a.replicates_assured,
                "note": a.note,
            }
        )
    return (
        f"\nReplicates needed for every effect's {options.confidence:.0%} interval to be at "
        f"most ±{options.target} (`--target-ci`), from this campaign's error variance. "
        "*Expected*: the half-width is on target when the next campaign's error equals this "
        f"one's. *Assured* (recommended): it is on target with probability "
        f"{options.assurance:.0%}, counting the uncertainty of both error estimates "
        "(F quantile).\n\n" + tables.markdown(pd.DataFrame(rows))
    )


def _adjusted(
    results: Results, fitted: list[str], noise: NoiseAssessment, options: QualityOptions
) -> dict[str, AdjustedFit | str]:
    policy = options.noise
    if not (policy.covariate or policy.block):
        return {}
    frame = noise.frame.set_index("trial_id")
    out: dict[str, AdjustedFit | str] = {}
    for response in fitted:
        trials = results.trials
        usable = trials[(trials["status"] == "succeeded") & trials[response].notna()].copy()
        if policy.covariate:
            usable["_cal"] = usable["trial_id"].map(frame["calibration_dev_pct"]) / 100.0
            usable = usable[usable["_cal"].notna()]
            if len(usable) < 3:
                out[f"{response} (covariate)"] = "too few runs with a calibration"
            else:
                column = (usable["_cal"] - usable["_cal"].mean()).to_numpy()
                out[f"{response} (covariate)"] = adjusted_fit(
                    usable, results.factors, response, {"calibration": column}, "covariate"
                )
        if policy.block:
            labels = usable["trial_id"].map(frame["node"]).fillna("?")
            blocks = block_columns(labels, policy.block)
            key = f"{response} (block: {policy.block})"
            if not blocks:
                out[key] = f"every run was on one {policy.block} ({labels.iloc[0]}): no block"
            else:
                out[key] = adjusted_fit(usable, results.factors, response, blocks, "block")
    return out


def _prediction_table(
    results: Results, pilot: Any, path: Path, out: Path, data: dict[str, Any]
) -> str:
    frame = predicted_vs_measured(results.trials, pilot)
    frame.to_csv(out / "prediction.csv", index=False)
    train_error = median_abs_error(frame, "train_error_pct")
    wall_error = median_abs_error(frame, "wall_error_pct")
    span = measured_span_s(results.trials)
    data["prediction"] = {
        "pilot": str(path),
        "iterations": pilot.iterations,
        "median_abs_train_error_pct": train_error,
        "median_abs_wall_error_pct": wall_error,
        "campaign_wall_predicted_s": pilot.campaign_wall_time_s,
        "campaign_span_measured_s": span,
        "trials": records(frame),
    }
    md = [
        "\n## Predicted against measured\n\n",
        f"The pilot (`{path.name}`, {pilot.iterations} iterations per design point) predicted "
        "each trial's train time from the iteration-time study's model (first iteration + the rest "
        "at TMiAvg) and its wall time with start-up and validation (`prediction.csv`; error = "
        "(predicted - measured) / measured).\n\n",
        f"Median |error|: train time {_pct(train_error)}, wall time {_pct(wall_error)}.",
    ]
    if pilot.campaign_wall_time_s is not None and span is not None:
        md.append(
            f" Campaign: predicted {pilot.campaign_wall_time_s:.0f} s (with every trial's "
            f"launch), measured {span:.0f} s from the first trial's start to the last one's "
            "finish (the workers' clocks: the first launch is not in it)."
        )
    md.append("\n\n" + tables.markdown(frame))
    return "".join(md)


def _pct(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.1f}%"
