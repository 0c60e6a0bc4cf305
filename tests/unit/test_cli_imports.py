"""``trainbed plan``, ``schema`` and ``--help`` stay fast: they never import the heavy stacks.

Each verb runs in a fresh interpreter, and the modules it loaded are read from ``sys.modules``
after it returns. torch alone costs seconds of start-up on a 2-core machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "torchvision", "kubernetes", "matplotlib", "statsmodels", "tensorboard", "scipy")

PROBE = """
import json, sys
from trainbed.orchestrator.cli import app
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
sys.stdout.flush()
print("\\nMODULES=" + json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _modules_after(*argv: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    line = [x for x in proc.stderr.splitlines() if x.startswith("MODULES=")]
    assert line, proc.stderr[-2000:]
    return set(json.loads(line[-1].removeprefix("MODULES=")))


@pytest.mark.parametrize(
    "argv",
    [
        ("plan", "experiments/fmnist-2k1.yaml"),
        ("plan", "experiments/fmnist-2k1.yaml", "--json"),
        ("plan", "experiments/quickstart.yaml"),
        ("schema",),
        ("--help",),
    ],
    ids=lambda a: " ".join(a),
)
def test_light_verbs_import_no_heavy_stack(argv: tuple[str, ...]) -> None:
    loaded = _modules_after(*argv)
    assert "trainbed.orchestrator.cli" in loaded
    if argv[0] == "plan":
        assert "trainbed.orchestrator.plan.design" in loaded, "the probe did not run plan"
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert not heavy, f"`trainbed {' '.join(argv)}` imported {heavy[:10]}"


def test_the_probe_would_see_a_heavy_import() -> None:
    """The check can fail: `analyze` on a missing folder still imports the analysis stack."""
    loaded = _modules_after("analyze", "/nonexistent/results")
    assert any(m.split(".")[0] in HEAVY for m in loaded)
