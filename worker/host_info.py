"""What this rank runs on, read back from the system for ``result.json``'s ``host``
(:class:`~trainbed.contract.host.HostInfo`).

The parsers of ``/proc/cpuinfo`` and ``/proc/self/mountinfo`` are pure (table-tested); the
reader calls them on this machine's files and asks torch (and NVML, where ``pynvml`` imports)
for the GPU stack. Whatever cannot be read stays null: a missing file, a CPU-only torch build, no
NVIDIA driver. Nothing here guesses.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from trainbed.contract.host import CgroupMode, HostInfo

T = TypeVar("T")


def cpu_model(cpuinfo: str) -> str | None:
    """The ``model name`` of ``/proc/cpuinfo`` (x86); ``Processor``/``cpu model``/``uarch``
    where an architecture names it so; distinct models in order, joined with " + ". None when
    no line names one (many ARM kernels give only ``CPU part`` numbers)."""
    keys = ("model name", "processor", "cpu model", "uarch")
    found: list[str] = []
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip().lower(), " ".join(value.split())
        if not sep or key not in keys or not value:
            continue
        if key == "processor" and value.isdigit():  # x86's "processor : 0" is an index
            continue
        if value not in found:
            found.append(value)
    return " + ".join(found) if found else None


def cgroup_mode(mountinfo: str) -> CgroupMode | None:
    """``v1`` (cgroup v1 controllers only), ``v2`` (cgroup2 only), ``hybrid`` (both, e.g.
    systemd's cgroup2 at ``/sys/fs/cgroup/unified`` beside v1 controllers), or None where no
    cgroup filesystem is mounted. A v1 mount without a controller (``name=systemd`` alone) does
    not make a host v1: its resources are still the unified hierarchy's."""
    v1 = v2 = False
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4:
            continue
        fstype, options = fields[dash + 1], fields[dash + 3].split(",")
        if fstype == "cgroup2":
            v2 = True
        elif fstype == "cgroup" and any(
            o and o not in ("rw", "ro") and "=" not in o and o not in _MOUNT_FLAGS for o in options
        ):
            v1 = True
    if v1 and v2:
        return "hybrid"
    return "v1" if v1 else "v2" if v2 else None


#: Superblock options of a cgroup v1 mount that are not controllers.
_MOUNT_FLAGS = frozenset({"xattr", "noprefix", "clone_children", "cpuset_v2_mode", "nsdelegate"})


def nccl_text(version: object) -> str | None:
    """``torch.cuda.nccl.version()``: a tuple ``(2, 21, 5)`` in current torch, an int
    ``2708`` (major*1000 + minor*100 + patch) in old ones."""
    if isinstance(version, tuple | list) and version:
        return ".".join(str(part) for part in version)
    if isinstance(version, int) and version > 0:
        major, rest = divmod(version, 1000)
        minor, patch = divmod(rest, 100)
        return f"{major}.{minor}.{patch}"
    return None


def read_host(device: str | None = None, proc: Path = Path("/proc")) -> HostInfo:
    """This machine as far as it can be read. ``device`` is the rank's torch device
    (``cuda:1``), whose GPU model is recorded; by default the first visible GPU's."""
    import torch

    cuda = _try(torch.cuda.is_available) is True
    index = 0
    if device and device.startswith("cuda:"):
        index = int(device.split(":", 1)[1])
    affinity = _try(lambda: len(os.sched_getaffinity(0)))
    return HostInfo(
        kernel=platform.release() or None,
        cpu_model=_try(lambda: cpu_model((proc / "cpuinfo").read_text())),
        cpu_count=os.cpu_count(),
        cpu_affinity=affinity,
        cgroup_mode=_try(lambda: cgroup_mode((proc / "self" / "mountinfo").read_text())),
        gpu_model=_try(lambda: torch.cuda.get_device_name(index)) if cuda else None,
        gpu_count=_try(torch.cuda.device_count) if cuda else None,
        gpu_driver=driver_version(),
        cuda=torch.version.cuda,
        cudnn=_try(torch.backends.cudnn.version),
        nccl=_try(lambda: nccl_text(torch.cuda.nccl.version())) if cuda else None,
    )


def driver_version() -> str | None:
    """The NVIDIA driver's version from NVML; None without ``pynvml`` or a driver."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - NVMLError_LibraryNotFound, _DriverNotLoaded, ...
        return None
    try:
        version = pynvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    except Exception:  # noqa: BLE001 - any NVML error: the driver is then not known
        return None
    finally:
        _try(pynvml.nvmlShutdown)


def _try(read: Callable[[], T]) -> T | None:
    """``read()``, or None where the system does not tell (a file, a library, a driver)."""
    try:
        return read()
    except Exception:  # noqa: BLE001 - an unreadable value is recorded as unknown, not a crash
        return None
