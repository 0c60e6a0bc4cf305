"""How much faster trainbed's own event reader loads a campaign's TensorBoard scalars than tbparse.

It writes a synthetic campaign of 500 trials (5 tags x 100 steps each, plus 1,000 iterations per
trial), then, interleaved over several repeats, reads every trial's scalars with the fast reader
(``trainbed.analysis.reading.tbevents.read_campaign_scalars``, checksums verified) and with
tbparse's
``SummaryReader`` over the same folder, checks they agree, and prints the median ratio tbparse
time / fast time on its last line (target >= 5).
The full ``trainbed.analysis.reading.load`` (design, results, iterations and scalars) is timed too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

from trainbed.analysis import load
from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reading.tbevents import read_campaign_scalars


def fast_all(trials: list[Path]) -> int:
    return sum(len(frame) for frame in read_campaign_scalars(trials).values())


def tbparse_all(root: Path) -> int:
    from tbparse import SummaryReader

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame = SummaryReader(str(root / "trials"), extra_columns={"dir_name"}).scalars
    return len(frame)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        spec = SyntheticCampaign(
            name="bench",
            factors=[("a", [1, 2]), ("b", [1, 2])],
            generators={},
            replicates=args.trials // 4,
            epochs=100,
            iterations=1000,
        )
        started = time.perf_counter()
        root = write_results(Path(tmp), spec)
        print(f"wrote {args.trials} trials in {time.perf_counter() - started:.1f} s")
        trials = sorted((root / "trials").iterdir())
        fast_times, slow_times, ratios = [], [], []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            fast_rows = fast_all(trials)
            t1 = time.perf_counter()
            slow_rows = tbparse_all(root)
            t2 = time.perf_counter()
            assert fast_rows == slow_rows == args.trials // 4 * 4 * 5 * 100, (fast_rows, slow_rows)
            fast_times.append(t1 - t0)
            slow_times.append(t2 - t1)
            ratios.append((t2 - t1) / (t1 - t0))
            print(
                f"repeat {i + 1}: fast {t1 - t0:.2f} s, tbparse {t2 - t1:.2f} s, "
                f"ratio {ratios[-1]:.1f}",
                flush=True,
            )
        t0 = time.perf_counter()
        results = load(root)
        full = time.perf_counter() - t0
        assert isinstance(results.epochs, pd.DataFrame) and len(results.iterations) > 0
        print(
            f"full trainbed.analysis.reading.load (fast reader): {full:.2f} s, "
            f"{len(results.iterations)} iterations, {len(results.epochs)} epoch rows"
        )
        print(
            f"medians: fast {statistics.median(fast_times):.2f} s, "
            f"tbparse {statistics.median(slow_times):.2f} s"
        )
        print(f"load_results ratio: {statistics.median(ratios):.1f}")


if __name__ == "__main__":
    main()
