"""How long planning a 10-factor resolution-IV design takes (spec parse + design + structure).

It times the pure design path several times and prints the median; the baseline beside it is the
bare pydoe call, so the ratio shows what trainbed's structure computation costs on top.
The last line is the plan time in seconds.
"""

from __future__ import annotations

import statistics
import time

from pydoe import fracfact_by_res

from trainbed.orchestrator.design import build_design
from trainbed.orchestrator.spec import parse_campaign

TARGETS = {
    "epochs": [1, 2],
    "batch_size": [16, 32],
    "lr": [0.01, 0.1],
    "optimizer": ["sgd", "adam"],
    "model": ["MLP", "LeNet5"],
    "parallelism": [1, 2],
    "dataloader_workers": [0, 1],
    "batch_norm": [False, True],
    "seed": [1, 2],
    "validation_fraction": [0.1, 0.2],
}
SPEC = {
    "apiVersion": "trainbed.io/v1alpha1",
    "kind": "Campaign",
    "metadata": {"name": "ten-factors"},
    "spec": {
        "design": {"type": "fractional", "resolution": 4, "replicates": 2, "seed": 1},
        "factors": [
            {"name": f"f{i}", "target": f"workload.{t}", "levels": lv}
            for i, (t, lv) in enumerate(TARGETS.items())
        ],
    },
}


def main(repeats: int = 7) -> None:
    plan_times: list[float] = []
    pydoe_times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fracfact_by_res(10, 4)
        pydoe_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        design = build_design(parse_campaign(SPEC))
        plan_times.append(time.perf_counter() - start)
    assert design.resolution is not None and design.resolution >= 4
    plan = statistics.median(plan_times)
    bare = statistics.median(pydoe_times)
    print(
        f"runs per replicate: {len(design.points)}, resolution {design.resolution}, "
        f"word-length pattern {design.word_length_pattern}"
    )
    print(f"plan vs bare fracfact_by_res ratio: {plan / bare:.1f}")
    print(f"plan_speed seconds: {plan:.4f}")


if __name__ == "__main__":
    main()
