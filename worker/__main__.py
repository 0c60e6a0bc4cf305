"""``python -m trainbed.worker --spec TRIAL.json --out TRIAL_DIR``: run one rank of one trial.

The entry point of worker processes (the local executor starts them this way) and of pods
(``trainbed worker`` is a thin alias of it). It needs nothing from the orchestrator.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from trainbed.worker.main import main_worker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainbed.worker", description=__doc__)
    parser.add_argument("--spec", type=Path, required=True, help="the trial's trial.json")
    parser.add_argument("--out", type=Path, required=True, help="the trial's directory")
    args = parser.parse_args(argv)
    return main_worker(args.spec.resolve(), args.out.resolve())


if __name__ == "__main__":
    sys.exit(main())
