"""Shared helpers for end-to-end runs: write small campaign files, run the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from trainbed.contract.layout import RESULT_FILE


def write_campaign(
    path: Path,
    name: str,
    factors: list[dict[str, Any]],
    *,
    design: dict[str, Any] | None = None,
    workload: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
    timeout_s: float = 300,
) -> Path:
    spec = {
        "apiVersion": "trainbed.io/v1alpha1",
        "kind": "Campaign",
        "metadata": {"name": name},
        "spec": {
            "design": design or {"type": "full", "replicates": 1, "seed": 1},
            "factors": factors,
            "trial": {
                "workload": {
                    "dataset": "digits",
                    "model": "MLP",
                    "epochs": 1,
                    "batch_size": 64,
                    "parallelism": 1,
                    **(workload or {}),
                },
                "resources": {"cpu": "1", "memory": "1536Mi", **(resources or {})},
            },
            "responses": ["accuracy", "time"],
            "execution": {"trial_timeout_s": timeout_s},
        },
    }
    path.write_text(yaml.safe_dump(spec))
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "TRAINBED_NO_PROGRESS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"trainbed {' '.join(args)} exited {proc.returncode}\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


def results(campaign_dir: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((campaign_dir / "trials").glob(f"*/{RESULT_FILE}")):
        out[path.parent.name] = json.loads(path.read_text())
    return out


def design_ids(campaign_dir: Path) -> list[str]:
    lines = (campaign_dir / "design.csv").read_text().splitlines()[1:]
    return [line.split(",")[0] for line in lines]
