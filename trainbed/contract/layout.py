"""The results directory (contract): every file and folder name, defined here once.

::

    DIR/<campaign>/
      campaign.yaml                 the resolved spec, with versions and seeds
      design.csv                    trial_id, run_order, replicate, [block], <name>, <name>_coded
      trials/<trial_id>/
        trial.json                  the TrialSpec as run
        result.json                 a Result, written atomically at the end
        timestamps.jsonl            one Timestamp per line (start/stop per rank)
        iterations/rank-<r>.csv     per-iteration timings of rank r
        shards/rank-<r>.json        the sample indices rank r trained on (hashes per epoch)
        tb/                         TensorBoard events (rank 0), with the trial's hparams
        logs/rank-<r>.log           the rank's stdout and stderr
      attempts/<trial_id>/<stamp>/  partial output of an interrupted attempt, moved aside
      report/                       written by ``trainbed analyze``
      pilot.json                    ``trainbed pilot``'s predictions of every trial's times
      pilot/<campaign>/             the pilot's short trials, a results directory of its own
      gpu-restore.json              GPU settings to restore, present only while a trial has them
      confirmation.json             ``trainbed confirm``'s frozen predictions and its trials

:class:`ResultsLayout` names these paths for a local root and for the pod's mount alike: it is
pure (no I/O) and keeps the path type it is given (``Path`` here, ``PurePosixPath`` for a pod).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath
from typing import Generic, TypeVar

CAMPAIGN_FILE = "campaign.yaml"
DESIGN_FILE = "design.csv"
TRIALS_DIR = "trials"
ATTEMPTS_DIR = "attempts"
REPORT_DIR = "report"
#: ``trainbed pilot``'s predictions (:class:`trainbed.contract.pilot.PilotRecord`), and the
#: folder that holds the pilot's own short trials (a results directory of its own).
PILOT_FILE = "pilot.json"
PILOT_DIR = "pilot"
LOCK_FILE = ".driver.lock"
#: The GPU settings (power limit, locked clock) a running trial changed and their values before,
#: written before they are changed and removed once restored: a killed driver's --resume
#: restores them first.
GPU_RESTORE_FILE = "gpu-restore.json"
#: ``trainbed confirm``'s blocks (:class:`trainbed.contract.confirmation.ConfirmationRecord`).
CONFIRMATION_FILE = "confirmation.json"
#: In the report folder: the recommendation ``trainbed analyze`` made, and the goal it used.
RECOMMENDATION_FILE = "recommendation.json"

TRIAL_FILE = "trial.json"
RESULT_FILE = "result.json"
TIMESTAMPS_FILE = "timestamps.jsonl"
ITERATIONS_DIR = "iterations"
TB_DIR = "tb"
LOGS_DIR = "logs"
SHARDS_DIR = "shards"

#: The first columns of design.csv; then ``<name>`` (level as written) and ``<name>_coded``
#: (-1/+1, or the level index for factors with more than two levels) for each factor in order.
DESIGN_COLUMNS: tuple[str, ...] = ("trial_id", "run_order", "replicate")
#: design.csv's block column (1, 2, ...), after ``replicate``: written only when the design has
#: more than one block (a fold-over from ``trainbed augment``); absent, every trial is block 1.
BLOCK_COLUMN = "block"
CODED_SUFFIX = "_coded"

P = TypeVar("P", bound=PurePath)


def coded_column(factor: str) -> str:
    """design.csv's column of a factor's coded level."""
    return f"{factor}{CODED_SUFFIX}"


@dataclass(frozen=True)
class TrialLayout(Generic[P]):
    """``trials/<trial_id>/`` and the files in it."""

    root: P

    @property
    def spec_file(self) -> P:
        return self.root / TRIAL_FILE

    @property
    def result_file(self) -> P:
        return self.root / RESULT_FILE

    @property
    def timestamps_file(self) -> P:
        return self.root / TIMESTAMPS_FILE

    @property
    def iterations_dir(self) -> P:
        return self.root / ITERATIONS_DIR

    @property
    def tb_dir(self) -> P:
        return self.root / TB_DIR

    @property
    def logs_dir(self) -> P:
        return self.root / LOGS_DIR

    @property
    def shards_dir(self) -> P:
        return self.root / SHARDS_DIR

    def iterations_file(self, rank: int) -> P:
        return self.iterations_dir / f"rank-{rank}.csv"

    def shards_file(self, rank: int) -> P:
        return self.shards_dir / f"rank-{rank}.json"

    def log_file(self, rank: int) -> P:
        return self.logs_dir / f"rank-{rank}.log"


@dataclass(frozen=True)
class ResultsLayout(Generic[P]):
    """``DIR/<campaign>/``: ``root`` is the campaign's folder, not ``DIR``."""

    root: P

    @classmethod
    def under(cls, out: P, campaign: str) -> ResultsLayout[P]:
        """The campaign's folder under a results directory (``--out`` or the pod's mount)."""
        return cls(out / campaign)

    @property
    def campaign_file(self) -> P:
        return self.root / CAMPAIGN_FILE

    @property
    def design_file(self) -> P:
        return self.root / DESIGN_FILE

    @property
    def trials_dir(self) -> P:
        return self.root / TRIALS_DIR

    @property
    def attempts_dir(self) -> P:
        return self.root / ATTEMPTS_DIR

    @property
    def report_dir(self) -> P:
        return self.root / REPORT_DIR

    @property
    def gpu_restore_file(self) -> P:
        return self.root / GPU_RESTORE_FILE

    @property
    def lock_file(self) -> P:
        return self.root / LOCK_FILE

    @property
    def pilot_file(self) -> P:
        return self.root / PILOT_FILE

    @property
    def pilot_dir(self) -> P:
        return self.root / PILOT_DIR

    @property
    def confirmation_file(self) -> P:
        return self.root / CONFIRMATION_FILE

    def trial(self, trial_id: str) -> TrialLayout[P]:
        return TrialLayout(self.trials_dir / trial_id)
