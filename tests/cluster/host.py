"""Host-level helpers shared by the real node and the image build: commands, Debian packages,
mounts, and a snapshot of what a real node may leave behind (processes, mounts, links, iptables
chains, cgroups). Standard library only."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path


class HostError(RuntimeError):
    """Something the host lacks or refused; the message is one line that says what."""


class NoRoom(HostError):
    """Too little free disk for a step, found before the step wrote anything."""


#: Free space kept beyond a step's own need, for what runs beside and after it (logs, results,
#: pytest's temporary folders): the last CI run filled the disk and failed tests that had
#: nothing to do with the step.
ROOM_MARGIN = 2 * 10**9


def require_room(path: Path, need: int, what: str) -> None:
    """Raise NoRoom unless the filesystem that holds ``path`` has ``need`` bytes free beyond
    ``ROOM_MARGIN``. A step that would fill the disk then stops before it starts, with one line
    that says how much it needs, rather than half-way, with the disk full for everyone."""
    probe = Path(path)
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need + ROOM_MARGIN:
        raise NoRoom(
            f"{what} needs {need / 1e9:.1f} GB of free disk (+{ROOM_MARGIN / 1e9:.0f} GB margin) "
            f"on the filesystem of {probe}, which has {free / 1e9:.1f} GB free"
        )


def log(prefix: str, message: str) -> None:
    print(f"[{prefix}] {message}", file=sys.stderr, flush=True)


def run(args: list[str], what: str, log_file: Path | None = None, **kwargs) -> str:
    """Run a command; on failure raise HostError with the command's last output lines."""
    if log_file is not None:
        with open(log_file, "ab") as out:
            out.write(f"\n$ {' '.join(args)}\n".encode())
            out.flush()
            proc = subprocess.run(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        output = log_file.read_text(errors="replace")[-3000:] if proc.returncode else ""
    else:
        proc = subprocess.run(args, capture_output=True, text=True, **kwargs)
        output = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0:
        raise HostError(f"{what} failed (exit {proc.returncode}): {' '.join(args)}\n{output}")
    return output


def require_root(what: str) -> None:
    """``what`` says what needs root and why, e.g. ``"x needs root (it mounts)"``."""
    if os.geteuid() != 0:
        raise HostError(what)


def ensure_packages(needs: dict[str, str], prefix: str) -> None:
    """``needs`` maps a path (or a command name) to the Debian package that provides it. What is
    missing is installed with apt-get where root and apt are there; otherwise one line says what
    to install."""
    missing = sorted(
        {
            package
            for path, package in needs.items()
            if not (Path(path).exists() if path.startswith("/") else shutil.which(path))
        }
    )
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise HostError(f"missing Debian packages: {' '.join(missing)} (apt-get install them)")
    log(prefix, f"installing Debian packages: {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    started = time.time()
    for args in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
    ):
        proc = subprocess.run(args, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
            raise HostError(f"apt-get could not install {' '.join(missing)}: {tail[0]}")
    log(prefix, f"installed {' '.join(missing)} in {time.time() - started:.0f} s")


def mounts() -> list[str]:
    """Mount points, as the kernel lists them (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        points.append(point.encode().decode("unicode_escape"))
    return points


def unmount_under(*roots: Path | str) -> None:
    """Unmount everything at or below ``roots``, deepest first (lazily where still busy)."""
    roots = [str(Path(r)) for r in roots]
    for _ in range(5):
        found = [
            p for p in mounts() if any(p == r or p.startswith(r.rstrip("/") + "/") for r in roots)
        ]
        if not found:
            return
        for point in sorted(set(found), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    left = [p for p in mounts() if any(p.startswith(str(r)) for r in roots)]
    if left:
        raise HostError(f"could not unmount {left}")


def remove_tree(path: Path) -> None:
    """``rm -rf`` that never crosses into a mount: everything below is unmounted first."""
    if path.exists() or path.is_symlink():
        unmount_under(path)
        shutil.rmtree(path, ignore_errors=True)
        if path.exists():
            raise HostError(f"could not remove {path}")


# --- what a real node may leave behind -----------------------------------------------------

CGROUP_ROOT = Path("/sys/fs/cgroup")
NODE_PROGRAMS = ("containerd", "containerd-shim-runc-v2", "kubelet", "coredns", "socat", "runc")


def processes() -> set[str]:
    """The node's programs that are running, as ``name:pid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            name = Path(os.readlink(entry / "exe")).name
            if name in NODE_PROGRAMS or name == "pause":
                found.add(f"{name}:{entry.name}")
    return found


def links() -> set[str]:
    return {
        line.split()[0].split("@")[0]
        for line in subprocess.run(
            ["ip", "-br", "link"], capture_output=True, text=True
        ).stdout.splitlines()
        if line.strip()
    }


def chains() -> set[str]:
    """Every iptables/ip6tables chain, as ``tool/table/chain``."""
    found = set()
    for tool in ("iptables", "ip6tables"):
        if shutil.which(tool) is None:
            continue
        for table in ("filter", "nat", "mangle", "raw"):
            out = subprocess.run([tool, "-t", table, "-S"], capture_output=True, text=True)
            for line in out.stdout.splitlines():
                if line.startswith(("-N ", "-P ")):
                    found.add(f"{tool}/{table}/{line.split()[1]}")
    return found


def cgroups() -> set[str]:
    """Every cgroup directory, in every hierarchy, relative to /sys/fs/cgroup."""
    found = set()
    if not CGROUP_ROOT.exists():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        for dirpath, dirnames, _ in os.walk(hierarchy):
            for name in dirnames:
                found.add(str(Path(dirpath, name).relative_to(CGROUP_ROOT)))
    return found


def snapshot(paths: tuple[str, ...] = ()) -> dict[str, set[str]]:
    """What the hygiene check compares before ``up --real-node`` and after ``down``."""
    return {
        "processes": {p.split(":")[0] for p in processes()},
        "mounts": set(mounts()),
        "links": links(),
        "chains": chains(),
        "cgroups": cgroups(),
        "paths": {p for p in paths if Path(p).exists()},
    }
