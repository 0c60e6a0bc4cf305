"""How the benchmarks run a campaign and read it back, so that each holds only its campaign
and its numbers.

:func:`run_campaign` runs a campaign file through the CLI, as a user would, and
:func:`succeeded_trials` reads its trials back: a benchmark refuses to compute a ratio over a
trial that did not succeed. :func:`load_average` is printed before and after, since the machine
is shared. The cluster side (namespaces with a results volume) is :mod:`benchmarks.cluster`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

#: The checkout: campaigns, charts and the CLI's package are found from it.
ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as ``/proc/loadavg`` writes them."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_campaign(body: dict[str, Any], root: Path, *options: str) -> Path:
    """``trainbed run`` the campaign ``body`` (written into ``root``) with no analysis and no
    progress bar; exit with its output if it fails. Returns the campaign's results directory."""
    spec = root / "campaign.yaml"
    spec.write_text(yaml.safe_dump(body, sort_keys=False))
    out = root / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "run", str(spec)]
        + ["--out", str(out), "--no-analyze", *options],
        env={**os.environ, "TRAINBED_NO_PROGRESS": "1"},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"trainbed run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return out / body["metadata"]["name"]


def succeeded_trials(campaign_dir: Path) -> Iterator[tuple[Path, dict[str, Any], dict[str, Any]]]:
    """Each trial's (directory, result.json, trial.json), in trial-id order; exit at the first
    trial that did not succeed, with its status and reason."""
    for trial in sorted((campaign_dir / "trials").iterdir()):
        result = json.loads((trial / "result.json").read_text())
        if result["status"] != "succeeded":
            sys.exit(f"{trial.name}: {result['status']}: {result.get('reason')}")
        yield trial, result, json.loads((trial / "trial.json").read_text())
