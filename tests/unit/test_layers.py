"""The import layers are enforced by ruff's banned-import rule (TID251), not by good intentions.

Each case plants one forbidden import into a copy of the source tree (the real folders stay
untouched, so nothing planted can be left behind or seen by a concurrent run) and asserts that
ruff, run with the copied configuration, fails on exactly that line with the banned-import rule.
The real tree passes the same check, so the rule is live and the code obeys it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The source folders whose layers the rules describe, and the configuration they extend.
COPIED = ("orchestrator", "trainbed", "worker", "analysis")


def _ruff(cwd: Path, *paths: str) -> list[dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "json", *paths],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout or "[]")


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sources and their ruff configuration."""
    root = tmp_path_factory.mktemp("tree")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ruff_cache")
    for folder in COPIED:
        shutil.copytree(ROOT / folder, root / folder, ignore=ignore)
    return root


# (folder, planted line, the banned module ruff must name)
VIOLATIONS = [
    (
        "orchestrator/plan",
        "from trainbed.orchestrator.kube import api",
        "trainbed.orchestrator.kube",
    ),
    (
        "orchestrator/plan",
        "from trainbed.orchestrator.kube.adapter.api import KubeApi",
        "trainbed.orchestrator.kube",
    ),
    (
        "orchestrator/plan",
        "from trainbed.orchestrator.local.executor import LocalExecutor",
        "trainbed.orchestrator.local",
    ),
    ("orchestrator/plan", "from trainbed.worker.stopping import TargetTracker", "trainbed.worker"),
    ("orchestrator/plan", "import kubernetes", "kubernetes"),
    (
        "orchestrator/local",
        "from trainbed.orchestrator.kube.control.controller import Controller",
        "trainbed.orchestrator.kube",
    ),
    ("orchestrator/local", "from kubernetes import client", "kubernetes"),
    (
        "orchestrator/kube",
        "from trainbed.orchestrator.local import executor",
        "trainbed.orchestrator.local",
    ),
    (
        "orchestrator/kube/control",
        "from trainbed.orchestrator.local.network import HostNetwork",
        "trainbed.orchestrator.local",
    ),
    ("orchestrator/kube/control", "from kubernetes import watch", "kubernetes"),
    (
        "orchestrator/kube/control",
        "from trainbed.orchestrator.kube.verbs.commands import submit",
        "trainbed.orchestrator.kube.verbs",
    ),
    ("orchestrator/kube/adapter", "from kubernetes import watch", "kubernetes"),
    (
        "orchestrator/kube/adapter",
        "from trainbed.orchestrator.kube.control.executor import KubernetesExecutor",
        "trainbed.orchestrator.kube.control",
    ),
    (
        "orchestrator/kube/objects",
        "from trainbed.orchestrator.kube.adapter.api import KubeApi",
        "trainbed.orchestrator.kube.adapter",
    ),
    (
        "orchestrator/kube/verbs",
        "from kubernetes.client.exceptions import ApiException",
        "kubernetes",
    ),
    ("orchestrator", "from kubernetes import config", "kubernetes"),
    (
        "worker",
        "from trainbed.orchestrator.plan.parse import load_campaign",
        "trainbed.orchestrator",
    ),
    ("analysis", "from trainbed.worker.stopping import TargetTracker", "trainbed.worker"),
]


@pytest.mark.parametrize(("folder", "line", "banned"), VIOLATIONS, ids=lambda v: str(v))
def test_a_planted_import_across_a_layer_fails_lint(
    tree: Path, folder: str, line: str, banned: str
) -> None:
    planted = tree / folder / "_planted_violation.py"
    planted.write_text(f'"""Planted by tests/unit/test_layers.py."""\n\n{line}  # noqa: F401\n')
    try:
        found = _ruff(tree, str(planted.relative_to(tree)))
    finally:
        planted.unlink()
    rules = [(f["code"], f["location"]["row"], f["message"]) for f in found]
    assert rules, f"ruff accepted {line!r} in {folder}/"
    assert [(code, row) for code, row, _ in rules] == [("TID251", 3)], rules
    assert f"`{banned}` is banned" in rules[0][2], rules


def test_only_the_client_module_may_import_kubernetes(tree: Path) -> None:
    """The exemption is one file wide: the same import is accepted in adapter/client.py."""
    client = tree / "orchestrator/kube/adapter/client.py"
    assert "from kubernetes import" in client.read_text()
    assert _ruff(tree, str(client.relative_to(tree))) == []


def test_the_real_tree_obeys_its_layers() -> None:
    found = _ruff(ROOT, *COPIED)
    assert [f for f in found if f["code"] == "TID251"] == []
