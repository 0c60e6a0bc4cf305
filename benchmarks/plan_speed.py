"""How long planning a resolution design takes (spec parse + design + structure).

It times the pure design path several times and prints the median; the baseline beside it is the
bare pydoe call, so the ratio shows what trainbed's structure computation costs on top. The
minimum-aberration look-up (orchestrator/plan/min_aberration.py) is timed in the same loop, with its
cache cleared each time, and its design is printed beside the plan's, so the line shows whether
the plan got the MA design. The default is 10 factors at resolution IV; for the largest case the
catalogue holds, ``python benchmarks/plan_speed.py --factors 12 --resolution 5``.
The last line is the ratio of the medians, plan / bare pydoe (the line before it, the plan's
median time in seconds).
"""

from __future__ import annotations

import argparse
import statistics
import time

from pydoe import fracfact_by_res

from trainbed.contract.env import API_VERSION
from trainbed.orchestrator.plan import min_aberration
from trainbed.orchestrator.plan.design import build_design
from trainbed.orchestrator.plan.parse import parse_campaign

TARGETS = {
    "workload.epochs": [1, 2],
    "workload.batch_size": [16, 32],
    "workload.lr": [0.01, 0.1],
    "workload.optimizer": ["sgd", "adam"],
    "workload.model": ["MLP", "LeNet5"],
    "workload.parallelism": [1, 2],
    "workload.dataloader_workers": [0, 1],
    "workload.batch_norm": [False, True],
    "workload.seed": [1, 2],
    "workload.validation_fraction": [0.1, 0.2],
    "resources.cpu": ["1", "2"],
    "resources.memory": ["1Gi", "2Gi"],
}


def campaign(factors: int, resolution: int) -> dict:
    if factors > len(TARGETS):
        raise SystemExit(f"at most {len(TARGETS)} factors: that many distinct targets are known")
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": f"plan-speed-{factors}"},
        "spec": {
            "design": {
                "type": "fractional",
                "resolution": resolution,
                "replicates": 2,
                "seed": 1,
            },
            "factors": [
                {"name": f"f{i}", "target": target, "levels": levels}
                for i, (target, levels) in enumerate(list(TARGETS.items())[:factors])
            ],
        },
    }


def main(repeats: int = 7, factors: int = 10, resolution: int = 4) -> None:
    spec = campaign(factors, resolution)
    plan_times: list[float] = []
    pydoe_times: list[float] = []
    lookup_times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        fracfact_by_res(factors, resolution)
        pydoe_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        design = build_design(parse_campaign(spec))
        plan_times.append(time.perf_counter() - start)
        min_aberration._catalog_design.cache_clear()
        start = time.perf_counter()
        best = min_aberration.minimum_aberration(factors, resolution)
        lookup_times.append(time.perf_counter() - start)
    assert design.resolution is not None and design.resolution >= resolution
    plan = statistics.median(plan_times)
    bare = statistics.median(pydoe_times)
    print(
        f"{factors} factors at resolution {resolution}: runs per replicate: {len(design.points)}, "
        f"resolution {design.resolution}, word-length pattern {design.word_length_pattern}"
    )
    print(
        f"minimum aberration: runs {best.runs}, resolution {best.resolution}, word-length "
        f"pattern {[0, 0, *best.word_length_pattern]}, look-up "
        f"{statistics.median(lookup_times) * 1e3:.2f} ms; the plan is "
        f"{'MA' if list(best.word_length_pattern) == design.word_length_pattern[2:] else 'NOT MA'}"
    )
    print(f"plan_speed seconds: {plan:.4f} (bare fracfact_by_res: {bare:.4f})")
    print(f"plan vs bare fracfact_by_res ratio: {plan / bare:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", type=int, default=10)
    parser.add_argument("--resolution", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    main(args.repeats, args.factors, args.resolution)
