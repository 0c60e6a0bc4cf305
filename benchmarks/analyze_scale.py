"""Does ``trainbed analyze`` stay linear as campaigns grow? 1,000 against 10,000 trials.

It writes two synthetic campaigns (7 factors in a 2^(7-3) fraction, TensorBoard files,
per-iteration timings, as the worker writes them) of about 1,000 and 10,000 trials, then,
interleaved over the repeats, runs the whole analysis (``trainbed analyze``: every record read
through the contract's typed models, the fits, the figures, the report) on each in a fresh
process. It prints each run's seconds and peak memory (the process's maximum resident set), and
on its last line the median ratio of the 10,000-trial time to 10 x the 1,000-trial time
(``analyze_scale ratio: X``; linear is 1.0, below 1 the fixed cost still dominates).
Goals: 10,000 trials in <= 60 s and <= 2 GB, a ratio <= 1.1.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results

FACTORS = [(name, [1, 2]) for name in "abcdefg"]
#: E = ABC, F = ABD, G = ACD: 16 design points
GENERATORS = {4: [0, 1, 2], 5: [0, 1, 3], 6: [0, 2, 3]}


def campaign(root: Path, trials: int, name: str) -> Path:
    spec = SyntheticCampaign(
        name=name,
        factors=list(FACTORS),
        generators=dict(GENERATORS),
        replicates=max(1, round(trials / 16)),
        effects={("a",): -5.0, ("b",): 3.0, ("a", "b"): 1.0},
        epochs=5,
        iterations=20,
    )
    return write_results(root, spec)


def analyze(root: Path) -> tuple[float, float]:
    """One ``trainbed analyze`` in a fresh process: (seconds, peak resident GB)."""
    env = {**os.environ, "MPLBACKEND": "Agg"}
    command = [sys.executable, "-m", "trainbed.orchestrator.cli", "analyze", str(root)]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    errors = process.stderr.read() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"trainbed analyze {root} failed ({process.returncode}): {errors[-500:]}")
    return seconds, usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        small = campaign(Path(tmp) / "small", args.small, "small")
        large = campaign(Path(tmp) / "large", args.large, "large")
        n_small = len(list((small / "trials").iterdir()))
        n_large = len(list((large / "trials").iterdir()))
        print(f"wrote {n_small} and {n_large} trials in {time.perf_counter() - started:.0f} s")
        ratios = []
        for repeat in range(1, args.repeats + 1):
            t_small, gb_small = analyze(small)
            t_large, gb_large = analyze(large)
            ratio = (t_large / n_large) / (t_small / n_small)
            ratios.append(ratio)
            print(
                f"repeat {repeat}: {n_small} trials {t_small:.1f} s {gb_small:.2f} GB; "
                f"{n_large} trials {t_large:.1f} s {gb_large:.2f} GB; ratio {ratio:.2f}"
            )
    print(f"analyze_scale ratio: {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
