"""Writing a campaign's results directory, and resuming one: the I/O over its layout.

The names are :mod:`trainbed.contract.layout`'s. campaign.yaml and design.csv are written first,
each trial's trial.json before it starts; ``attempts/`` receives partial output moved aside on
resume, and a lock file keeps two drivers off one directory. :meth:`ResultsDir.extend` rewrites
both files for a design that gained a block (``trainbed augment``), keeping every trial already
recorded.
"""

from __future__ import annotations

import fcntl
import json
import platform
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import yaml

import trainbed
from trainbed.contract.campaign import Campaign
from trainbed.contract.env import SEEDS_ANNOTATION, VERSIONS_ANNOTATION
from trainbed.contract.errors import UserError
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.records import atomic_write_text
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.plan.design import Design
from trainbed.orchestrator.plan.trials import design_csv


def resolved_campaign(campaign: Campaign, trials: list[TrialSpec]) -> dict[str, Any]:
    """campaign.yaml's content: the spec with every default filled in, versions and seeds."""
    import torch

    data = campaign.model_dump(mode="json", exclude_none=True, exclude={"status"})
    annotations = data["metadata"].setdefault("annotations", {})
    annotations[VERSIONS_ANNOTATION] = json.dumps(
        {
            "trainbed": trainbed.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        sort_keys=True,
    )
    annotations[SEEDS_ANNOTATION] = json.dumps(
        {"design": campaign.spec.design.seed, "trials": {t.trial_id: t.seed for t in trials}},
        sort_keys=True,
    )
    return data


@dataclass
class ResultsDir:
    """One campaign's folder under ``--out``."""

    root: Path

    @classmethod
    def for_campaign(cls, out: Path, campaign: Campaign) -> ResultsDir:
        assert Path(out).is_absolute(), "the CLI resolves --out; worker processes start elsewhere"
        return cls(Path(out) / campaign.name)

    @property
    def layout(self) -> ResultsLayout[Path]:
        return ResultsLayout(self.root)

    def trial_dir(self, trial_id: str) -> Path:
        return self.layout.trial(trial_id).root

    def has_result(self, trial_id: str) -> bool:
        return self.layout.trial(trial_id).result_file.exists()

    def initialise(
        self, campaign: Campaign, design: Design, trials: list[TrialSpec], *, resume: bool
    ) -> None:
        """Write campaign.yaml and design.csv first; refuse to mix two different campaigns."""
        spec_file = self.layout.campaign_file
        if spec_file.exists():
            if not resume:
                raise UserError(
                    f"{self.root} already holds a campaign; pass --resume to continue it, "
                    "or choose another --out"
                )
            previous = yaml.safe_load(spec_file.read_text())
            spec = campaign.model_dump(mode="json", exclude_none=True)["spec"]
            folds = (previous.get("spec") or {}).get("design", {}).get("foldover")
            if previous.get("spec") != spec and folds and not spec["design"].get("foldover"):
                raise UserError(
                    f"{self.root} was extended by trainbed augment (spec.design.foldover: "
                    f"{', '.join(folds)}); resume it from its own spec: trainbed run "
                    f"{spec_file} --out {self.root.parent} --resume"
                )
            if previous.get("spec") != spec:
                raise UserError(
                    f"{self.root} holds results of a different spec for {campaign.name!r}; "
                    "--resume needs the same file, or choose another --out"
                )
        else:
            atomic_write_text(
                spec_file, yaml.safe_dump(resolved_campaign(campaign, trials), sort_keys=False)
            )
        atomic_write_text(self.layout.design_file, design_csv(campaign, design))
        self.layout.trials_dir.mkdir(parents=True, exist_ok=True)

    def extend(
        self,
        campaign: Campaign,
        design: Design,
        trials: list[TrialSpec],
        previous: list[TrialSpec],
    ) -> list[TrialSpec]:
        """Rewrite design.csv, then campaign.yaml, for ``campaign``'s larger design; returns the
        trials that are new.

        Every trial of ``previous`` (the design before) must be in ``trials`` with the same ID,
        levels and seed, so nothing already recorded is lost, relabelled or run twice; trials/
        is not touched. campaign.yaml is written last: it is what makes the extension count (a
        crash before it leaves the old campaign, and augmenting again starts over). Its
        annotations are kept, and the seeds annotation lists every trial.
        """
        by_id = {t.trial_id: t for t in trials}
        for old in previous:
            new = by_id.get(old.trial_id)
            assert new is not None and (new.levels, new.seed) == (old.levels, old.seed), (
                f"trial {old.trial_id} would change; the extension must keep it as it ran"
            )
        atomic_write_text(self.layout.design_file, design_csv(campaign, design))
        data = yaml.safe_load(self.layout.campaign_file.read_text()) or {}
        data["spec"] = campaign.model_dump(mode="json", exclude_none=True)["spec"]
        annotations = data.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[SEEDS_ANNOTATION] = json.dumps(
            {"design": campaign.spec.design.seed, "trials": {t.trial_id: t.seed for t in trials}},
            sort_keys=True,
        )
        atomic_write_text(self.layout.campaign_file, yaml.safe_dump(data, sort_keys=False))
        known = {t.trial_id for t in previous}
        return [t for t in trials if t.trial_id not in known]

    def set_aside_partial(self, trial_id: str) -> Path | None:
        """Move an incomplete trial's output to attempts/ so it is never mixed with a rerun."""
        directory = self.trial_dir(trial_id)
        if not directory.exists() or self.has_result(trial_id):
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.layout.attempts_dir / trial_id / stamp
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(directory), str(target))
        return target

    def write_trial(self, trial: TrialSpec) -> Path:
        directory = self.trial_dir(trial.trial_id)
        directory.mkdir(parents=True, exist_ok=True)
        spec_file = self.layout.trial(trial.trial_id).spec_file
        atomic_write_text(spec_file, trial.model_dump_json(indent=2) + "\n")
        return directory

    def lock(self) -> IO[str]:
        """An exclusive lock held for the driver's life; a second driver gets a clear error."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.layout.lock_file, "w")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(f"another trainbed driver is running on {self.root}") from None
        return handle
