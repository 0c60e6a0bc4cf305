"""The CPU and memory limits of this process's own cgroup, read back from the kernel's files.

In a pod the kubelet, not trainbed, writes the limits: the worker reads what its container's
cgroup says, so ``result.json``'s ``enforcement`` records what was in force rather than what was
asked for. Works from inside a container (where ``/sys/fs/cgroup/<controller>`` is the
container's own cgroup, mounted at its root) and from the host (where it is the hierarchy's
root): ``/proc/self/mountinfo`` says which cgroup each mount shows, ``/proc/self/cgroup`` which
one this process is in. cgroup v1 (``cpu.cfs_quota_us``, ``memory.limit_in_bytes``) and v2
(``cpu.max``, ``memory.max``). Parsing is pure; :func:`read_own_limits` is the one reader.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

#: A v1 ``memory.limit_in_bytes`` at or above this is "no limit" (the kernel writes
#: PAGE_COUNTER_MAX * page size, 9223372036854771712 with 4 KiB pages).
UNLIMITED_BYTES = 2**62


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/self/cgroup`` -> controller -> cgroup path; v2's unified line is key ``""``.

    v1 lines are ``id:cpu,cpuacct:/path`` (one key per controller), v2's is ``0::/path``.
    """
    found: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        for controller in controllers.split(",") if controllers else [""]:
            found[controller.removeprefix("name=")] = path
    return found


def parse_mountinfo(text: str) -> dict[str, tuple[str, str]]:
    """``/proc/self/mountinfo`` -> controller -> (the cgroup the mount shows as its root, where
    it is mounted); v2's mount is key ``""``. The last mount of a controller wins, as the
    path lookup would see it."""
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if len(fields) < dash + 4 or dash < 5:
            continue
        root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
        fstype, options = fields[dash + 1], fields[dash + 3]
        if fstype == "cgroup2":
            found[""] = (root, mountpoint)
        elif fstype == "cgroup":
            for option in options.split(","):
                found[option.removeprefix("name=")] = (root, mountpoint)
    return found


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def cgroup_dir(controller: str, proc_cgroup: str, mountinfo: str) -> Path | None:
    """The directory of this process's cgroup for ``controller`` (``""``: v2), or None where
    it is not mounted or this process's cgroup lies outside what the mount shows."""
    path = parse_proc_cgroup(proc_cgroup).get(controller)
    mount = parse_mountinfo(mountinfo).get(controller)
    if path is None or mount is None:
        return None
    root, mountpoint = mount
    try:
        relative = PurePosixPath(path).relative_to(root)
    except ValueError:
        return None
    return Path(mountpoint) / relative


def cpu_v1(quota: str, period: str) -> dict[str, Any]:
    q, p = int(quota), int(period)
    return {"cpu_quota_us": None if q < 0 else q, "cpu_period_us": p, "cpu_limit": _cores(q, p)}


def cpu_v2(cpu_max: str) -> dict[str, Any]:
    """``cpu.max`` is ``"<quota|max> <period>"``."""
    quota, period = cpu_max.split()
    q = -1 if quota == "max" else int(quota)
    return cpu_v1(str(q), period)


def memory_limit(value: str) -> int | None:
    """``memory.limit_in_bytes`` (v1) or ``memory.max`` (v2) in bytes; None: no limit."""
    value = value.strip()
    if value == "max":
        return None
    number = int(value)
    return None if number >= UNLIMITED_BYTES else number


def _cores(quota: int, period: int) -> float | None:
    return None if quota < 0 or period <= 0 else round(quota / period, 6)


def read_own_limits(proc: Path = Path("/proc/self")) -> dict[str, Any]:
    """What this process's cgroup enforces: ``cgroup_version``, the cgroup paths,
    ``cpu_quota_us``/``cpu_period_us``/``cpu_limit`` (cores) and ``memory_limit_bytes``; a
    value that cannot be read is null, with ``errors`` saying why."""
    proc_cgroup = (proc / "cgroup").read_text()
    mountinfo = (proc / "mountinfo").read_text()
    record: dict[str, Any] = {
        "cpu_quota_us": None,
        "cpu_period_us": None,
        "cpu_limit": None,
        "memory_limit_bytes": None,
    }
    errors: list[str] = []
    unified = cgroup_dir("", proc_cgroup, mountinfo)
    cpu_dir = cgroup_dir("cpu", proc_cgroup, mountinfo)
    memory_dir = cgroup_dir("memory", proc_cgroup, mountinfo)
    if cpu_dir is not None or memory_dir is not None:
        record["cgroup_version"] = 1
        record["cgroup"] = parse_proc_cgroup(proc_cgroup).get("cpu")
        if cpu_dir is None:
            errors.append("the cpu controller is not mounted")
        else:
            _read(
                errors,
                record,
                lambda: cpu_v1(
                    (cpu_dir / "cpu.cfs_quota_us").read_text(),
                    (cpu_dir / "cpu.cfs_period_us").read_text(),
                ),
            )
        if memory_dir is None:
            errors.append("the memory controller is not mounted")
        else:
            limit = memory_dir / "memory.limit_in_bytes"
            _read(errors, record, lambda: {"memory_limit_bytes": memory_limit(limit.read_text())})
    elif unified is not None:
        record["cgroup_version"] = 2
        record["cgroup"] = parse_proc_cgroup(proc_cgroup).get("")
        _read(errors, record, lambda: cpu_v2((unified / "cpu.max").read_text()))
        _read(
            errors,
            record,
            lambda: {"memory_limit_bytes": memory_limit((unified / "memory.max").read_text())},
        )
    else:
        record["cgroup_version"] = None
        errors.append("no cgroup of this process is mounted")
    if errors:
        record["errors"] = errors
    return record


def _read(errors: list[str], record: dict[str, Any], read: Any) -> None:
    try:
        record.update(read())
    except (OSError, ValueError) as err:
        errors.append(str(err))
