"""Run trainbed as another user, from a checkout that user may not read.

The checkout may sit in a private directory (under ``/root``, or a ``mktemp -d`` folder, mode
0700), where another user cannot import trainbed from it. So the user gets a readable copy of
trainbed's sources (the four package folders, laid out as the import names) on ``PYTHONPATH``,
and a home of its own. The venv's interpreter may itself be a link into a private directory
(pyenv under ``/root``): then the system's Python of the same minor version runs the venv's
site-packages. The site-packages (torch) cannot be copied cheaply: where that user cannot read
them, the test skips and says so.

The probe starts a child process as the user: ``setpriv`` keeps root's capabilities until its
own exec, so only a grandchild shows what the user may really execute.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import shutil
import site
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: import path -> folder of the checkout
PACKAGES = {
    "trainbed": "trainbed",
    "trainbed/orchestrator": "orchestrator",
    "trainbed/worker": "worker",
    "trainbed/analysis": "analysis",
}


@dataclass(frozen=True)
class OtherUser:
    """A user other than root, with a home it owns and an environment that imports trainbed."""

    uid: int
    gid: int
    home: Path
    env: dict[str, str]
    #: the interpreter this user runs (the CLI's workers run it too)
    python: str = sys.executable

    @property
    def drop(self) -> list[str]:
        """The command prefix that runs as this user, without root's capabilities."""
        return [
            "setpriv",
            f"--reuid={self.uid}",
            f"--regid={self.gid}",
            "--clear-groups",
            "--inh-caps=-all",
        ]

    def trainbed(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``trainbed ARGS`` as this user, from its home (``env``: instead of its own)."""
        command = [*self.drop, self.python, "-m", "trainbed.orchestrator.cli", *args]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env or self.env,
            cwd=self.home,
            timeout=timeout,
        )


def readable_sources(into: Path) -> Path:
    """A copy of trainbed's packages under ``into``, readable by everyone; the folder to put
    on PYTHONPATH."""
    for name, folder in PACKAGES.items():
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / folder, into / name, ignore=skip, dirs_exist_ok=True)
    for path in [into, *into.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return into


@contextmanager
def other_user(uid: int | None = None) -> Iterator[OtherUser]:
    """A user for the test: ``uid`` as it is (e.g. 65534), or else a new one that useradd
    creates and userdel removes. Skips where setpriv or useradd is missing, where this process
    is not root, or where that user cannot run this interpreter with torch."""
    if os.geteuid() != 0:
        pytest.skip("running as another user needs root")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) not found")
    if uid is None and shutil.which("useradd") is None:
        pytest.skip("useradd not found")
    base = Path(tempfile.mkdtemp(prefix="trainbed-user-"))
    base.chmod(0o755)
    name = f"tb{uuid.uuid4().hex[:8]}"
    created = False
    try:
        home = base / "home"
        home.mkdir()
        if uid is None:
            subprocess.run(
                ["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/sh"]
                + ["--user-group", name],
                check=True,
                capture_output=True,
            )
            created = True
            entry = pwd.getpwnam(name)
            uid, gid = entry.pw_uid, entry.pw_gid
        else:
            gid = uid
        os.chown(home, uid, gid)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [
                    str(readable_sources(base / "src")),
                    *site.getsitepackages(),
                    *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)),
                ]
            ),
            "HOME": str(home),
            "TRAINBED_NO_PROGRESS": "1",
            "MPLCONFIGDIR": str(home / ".mpl"),
        }
        user = _runnable(OtherUser(uid=uid, gid=gid, home=home, env=env))
        yield user
    finally:
        if created:
            subprocess.run(["userdel", name], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


#: What the user's interpreter must manage: start itself again and import torch and trainbed.
PROBE = (
    "import subprocess, sys\n"
    "subprocess.run([sys.executable, '-c', 'import torch, trainbed.orchestrator.cli'], check=True)"
)


def _runnable(user: OtherUser) -> OtherUser:
    """The user with the first interpreter it may run: the venv's, else the system's Python of
    the same minor version over the venv's site-packages. Skips where none works."""
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = [sys.executable, f"/usr/bin/{version}", shutil.which(version)]
    last = "no output"
    for python in dict.fromkeys(c for c in candidates if c):
        probe = subprocess.run(
            [*user.drop, python, "-c", PROBE],
            capture_output=True,
            text=True,
            env=user.env,
            cwd=user.home,
        )
        if probe.returncode == 0:
            return dataclasses.replace(user, python=python)
        last = (probe.stderr.strip().splitlines() or [last])[-1]
    pytest.skip(
        f"uid {user.uid} can run no Python with torch and trainbed ({last}); the venv lies where "
        "only root may read it: put it in a readable place"
    )
