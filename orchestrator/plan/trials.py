"""From a design's runs to what each trial runs: TrialSpecs, and the design.csv table (contract).

Pure functions: the local executor and the Kubernetes manifests both start from
:func:`trial_spec`, so a trial means the same thing on either backend.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.layout import BLOCK_COLUMN, DESIGN_COLUMNS, coded_column
from trainbed.contract.trial import TrialSettings, TrialSpec
from trainbed.orchestrator.plan.checks import apply_levels
from trainbed.orchestrator.plan.design import Design, Run, build_design


def trial_seed(base_seed: int, trial_id: str) -> int:
    """Each trial gets its own seed, derived from the workload seed and its ID, and recorded.

    Replicates must not share a seed, or their accuracies would be identical and the ANOVA's
    error term would be a fiction.
    """
    digest = hashlib.sha256(f"{base_seed}|{trial_id}".encode()).hexdigest()
    return int(digest[:8], 16) % (2**31 - 1)


def trial_spec(campaign: Campaign, run: Run) -> TrialSpec:
    """The TRIAL.json of one run: spec.trial with the run's levels applied."""
    spec = campaign.spec
    settings_by_target = {f.target: run.levels[f.name] for f in spec.factors}
    settings = TrialSettings.model_validate(
        apply_levels(spec.trial.model_dump(mode="json"), settings_by_target)
    )
    workload = settings.workload
    seed = trial_seed(workload.seed, run.trial_id)
    return TrialSpec(
        campaign=campaign.name,
        trial_id=run.trial_id,
        seed=seed,
        workload=workload,
        resources=settings.resources,
        levels=dict(run.levels),
        replicate=run.replicate,
        timeout_s=spec.execution.trial_timeout_s,
    )


def design_rows(campaign: Campaign, design: Design) -> list[dict[str, Any]]:
    """Rows of design.csv in run order: trial_id, run_order, replicate, block (only when there
    are blocks), <name>, <name>_coded."""
    rows: list[dict[str, Any]] = []
    for run in design.runs:
        row: dict[str, Any] = {
            "trial_id": run.trial_id,
            "run_order": run.run_order,
            "replicate": run.replicate,
        }
        if design.blocks > 1:
            row[BLOCK_COLUMN] = run.block
        for letter, name in design.factors.items():
            row[name] = run.levels[name]
            row[coded_column(name)] = run.coded[letter]
        rows.append(row)
    return rows


def design_csv(campaign: Campaign, design: Design) -> str:
    """design.csv's text (contract columns)."""
    columns = [*DESIGN_COLUMNS, *([BLOCK_COLUMN] if design.blocks > 1 else [])]
    for name in design.factors.values():
        columns += [name, coded_column(name)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(design_rows(campaign, design))
    return buffer.getvalue()


@dataclass(frozen=True)
class CampaignPlan:
    """A validated campaign, its design, and the trial specs of its runs in run order."""

    campaign: Campaign
    design: Design
    trials: list[TrialSpec]


def plan_campaign(campaign: Campaign) -> CampaignPlan:
    """Everything a run needs before anything runs: ``trainbed run``, the controller and the
    benchmarks all start here, so a campaign means the same trials everywhere."""
    design = build_design(campaign)
    return CampaignPlan(campaign, design, [trial_spec(campaign, run) for run in design.runs])
