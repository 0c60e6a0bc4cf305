"""The results directory (contract): where a campaign's files go, and how a run resumes.

``DIR/<campaign>/`` holds campaign.yaml and design.csv (written first), ``trials/<id>/`` per trial
(files named in :mod:`trainbed.contract.records`), ``attempts/`` for partial output moved aside on
resume, and ``report/``. A lock file keeps two drivers off one directory.
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
from trainbed.contract.errors import UserError
from trainbed.contract.records import RESULT_FILE, TRIAL_FILE, atomic_write_text
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.plan.design import Design
from trainbed.orchestrator.plan.spec import Campaign
from trainbed.orchestrator.plan.trials import design_csv

CAMPAIGN_FILE = "campaign.yaml"
DESIGN_FILE = "design.csv"
TRIALS_DIR = "trials"
ATTEMPTS_DIR = "attempts"
LOCK_FILE = ".driver.lock"


def resolved_campaign(campaign: Campaign, trials: list[TrialSpec]) -> dict[str, Any]:
    """campaign.yaml's content: the spec with every default filled in, versions and seeds."""
    import torch

    data = campaign.model_dump(mode="json", exclude_none=True, exclude={"status"})
    annotations = data["metadata"].setdefault("annotations", {})
    annotations["trainbed.io/versions"] = json.dumps(
        {
            "trainbed": trainbed.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        sort_keys=True,
    )
    annotations["trainbed.io/seeds"] = json.dumps(
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

    def trial_dir(self, trial_id: str) -> Path:
        return self.root / TRIALS_DIR / trial_id

    def has_result(self, trial_id: str) -> bool:
        return (self.trial_dir(trial_id) / RESULT_FILE).exists()

    def initialise(
        self, campaign: Campaign, design: Design, trials: list[TrialSpec], *, resume: bool
    ) -> None:
        """Write campaign.yaml and design.csv first; refuse to mix two different campaigns."""
        spec_file = self.root / CAMPAIGN_FILE
        if spec_file.exists():
            if not resume:
                raise UserError(
                    f"{self.root} already holds a campaign; pass --resume to continue it, "
                    "or choose another --out"
                )
            previous = yaml.safe_load(spec_file.read_text())
            if previous.get("spec") != campaign.model_dump(mode="json", exclude_none=True)["spec"]:
                raise UserError(
                    f"{self.root} holds results of a different spec for {campaign.name!r}; "
                    "--resume needs the same file, or choose another --out"
                )
        else:
            atomic_write_text(
                spec_file, yaml.safe_dump(resolved_campaign(campaign, trials), sort_keys=False)
            )
        atomic_write_text(self.root / DESIGN_FILE, design_csv(campaign, design))
        (self.root / TRIALS_DIR).mkdir(parents=True, exist_ok=True)

    def set_aside_partial(self, trial_id: str) -> Path | None:
        """Move an incomplete trial's output to attempts/ so it is never mixed with a rerun."""
        directory = self.trial_dir(trial_id)
        if not directory.exists() or self.has_result(trial_id):
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        target = self.root / ATTEMPTS_DIR / trial_id / stamp
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(directory), str(target))
        return target

    def write_trial(self, trial: TrialSpec) -> Path:
        directory = self.trial_dir(trial.trial_id)
        directory.mkdir(parents=True, exist_ok=True)
        atomic_write_text(directory / TRIAL_FILE, trial.model_dump_json(indent=2) + "\n")
        return directory

    def lock(self) -> IO[str]:
        """An exclusive lock held for the driver's life; a second driver gets a clear error."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = open(self.root / LOCK_FILE, "w")  # noqa: SIM115 - held until the process ends
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise UserError(f"another trainbed driver is running on {self.root}") from None
        return handle
