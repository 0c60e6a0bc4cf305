"""Campaigns of simulated trials: kwok pods that "run" for a set time, then succeed.

``kwok-stages.yaml`` plays a pod annotated ``SIM_DURATION`` (``"5s"``; default 1 s) as Running
for that long and then Succeeded; the controller tests, the restart test and the kwok benchmarks
build their campaigns here, so the key and the campaign's shape are written once.
"""

from __future__ import annotations

from math import prod
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.env import API_VERSION
from trainbed.orchestrator.plan.parse import parse_campaign

#: The pod annotation kwok-stages.yaml reads for how long a simulated pod runs.
SIM_DURATION = "trainbed.io/sim-duration"


def simulated_campaign(
    name: str,
    factors: list[dict[str, Any]],
    *,
    trials: int,
    concurrency: int,
    duration: str,
    cleanup: str,
    seed: int = 1,
    image: str = "trainbed:bench",
    trial_timeout_s: int = 600,
    queue: str | None = None,
) -> Campaign:
    """A full factorial of ``factors`` replicated to ``trials`` runs (a multiple of the design's
    size), one rank each, whose kwok pods succeed ``duration`` after they start; through the
    Kueue LocalQueue ``queue`` where one is named."""
    points = prod(len(factor["levels"]) for factor in factors)
    return parse_campaign(
        {
            "apiVersion": API_VERSION,
            "kind": "Campaign",
            "metadata": {"name": name},
            "spec": {
                "design": {"type": "full", "replicates": trials // points, "seed": seed},
                "factors": factors,
                "trial": {
                    "workload": {"dataset": "digits", "parallelism": 1},
                    "resources": {"cpu": "100m", "memory": "128Mi"},
                },
                "execution": {"concurrency": concurrency, "trial_timeout_s": trial_timeout_s},
                "kubernetes": {
                    "image": image,
                    "cleanup": cleanup,
                    "pod_annotations": {SIM_DURATION: duration},
                    **({"queue": queue} if queue else {}),
                },
            },
        }
    )
