"""Where trainbed's cgroup v2 subtree goes, and which files to write to get there. Pure.

A snapshot of the host (:class:`HostCgroups`: ``/proc/self/cgroup``, ``/proc/self/mountinfo``
and, for this process's cgroup and each of its ancestors, ``cgroup.controllers``,
``cgroup.subtree_control``, whether ``cgroup.procs`` lists processes, whether this process may
write there) goes in; an ordered :class:`V2Plan` of writes, or the reason there is none, comes
out. The adapter (:mod:`trainbed.orchestrator.local.enforcers`) takes the snapshot and applies
the plan.

cgroup v2's rules decide the plan:

- a controller reaches a cgroup only when every ancestor names it in ``cgroup.subtree_control``,
  so ``+cpu +memory`` is written top-down, from the hierarchy's root to the parent of trainbed's
  subtree, wherever it is missing;
- a cgroup other than the root may not enable controllers for its children while it holds
  processes itself ("no internal processes"), so the subtree never goes under this process's
  own cgroup (which holds at least this process), but beside it: under the nearest ancestor
  that holds no processes. Nothing is ever moved, ours or anyone's.

The cases this covers: the own cgroup is the root ``/`` (containers, minimal inits: the root is
exempt from the rule); a leaf holding processes such as ``/process_api/<id>`` (the subtree goes
under ``/process_api``); a systemd session scope under ``user.slice`` (under the user's slice,
as root); a systemd user manager's delegated subtree (under the user's own ``app.slice``,
without root). A cgroup namespace's root (a container's ``/``) is not the real root: where it
holds processes, no plan exists without moving them, and the reason says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: The controllers trainbed needs in the subtree.
NEEDED = ("cpu", "memory")
#: The name of trainbed's subtree under the chosen parent.
SUBTREE = "trainbed"


@dataclass(frozen=True, kw_only=True)
class CgroupDir:
    """What the snapshot knows of one cgroup directory."""

    #: ``cgroup.controllers``: what its parent lets it use
    controllers: frozenset[str] = frozenset()
    #: ``cgroup.subtree_control``: what it passes to its children
    subtree_control: frozenset[str] = frozenset()
    #: ``cgroup.procs`` lists at least one process
    populated: bool = False
    #: this process may create children there and write its ``cgroup.subtree_control``
    writable: bool = False
    #: the hierarchy's real root (no ``cgroup.type`` file), exempt from "no internal processes"
    is_root: bool = False


@dataclass(frozen=True, kw_only=True)
class HostCgroups:
    """A snapshot of the host's cgroups, as far as the plan needs it."""

    proc_cgroup: str
    mountinfo: str
    #: cgroup path as /proc/self/cgroup spells it ("/", "/a/b") -> its state; the own cgroup and
    #: its ancestors up to the mount's root
    dirs: Mapping[str, CgroupDir] = field(default_factory=dict)


@dataclass(frozen=True)
class Write:
    """Write ``value`` into the file ``path`` (absolute, under the cgroup2 mount)."""

    path: str
    value: str


@dataclass(frozen=True)
class Mkdir:
    """Create the cgroup directory ``path`` (absolute), where it does not exist yet."""

    path: str


@dataclass(frozen=True, kw_only=True)
class V2Plan:
    """The writes, in order, and where trainbed's subtree is once they are done."""

    steps: tuple[Write | Mkdir, ...]
    #: the subtree's directory (absolute); trials go in ``<subtree>/<trial>/rank-<r>``
    subtree: str
    #: the ``cgroup.subtree_control`` writes that enabled a controller, to undo at the end
    enabled: tuple[Write, ...] = ()


def unified_mount(mountinfo: str) -> tuple[str, str] | None:
    """The cgroup2 mount: (the cgroup it shows as its root, where it is mounted); None where
    cgroup2 is not mounted. A hybrid host's ``/sys/fs/cgroup/unified`` counts: its plan then
    fails for want of controllers, as it should."""
    found = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash >= 5 and len(fields) > dash + 1 and fields[dash + 1] == "cgroup2":
            found = (fields[3].replace("\\040", " "), fields[4].replace("\\040", " "))
    return found


def own_unified(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path (the ``0::`` line), or None."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:].strip() or "/"
    return None


def chain(own: str, mount_root: str = "/") -> list[str]:
    """The cgroup paths from the mount's root down to ``own``, both included."""
    path = PurePosixPath(own)
    root = PurePosixPath(mount_root)
    paths = [path]
    while path != root and path != path.parent:
        path = path.parent
        paths.append(path)
    return [str(p) for p in reversed(paths)]


def plan_v2(host: HostCgroups) -> V2Plan | str:
    """The plan, or one sentence saying why there is none (the caller falls back, and the
    refusal names it)."""
    mount = unified_mount(host.mountinfo)
    if mount is None:
        return "cgroup2 is not mounted"
    mount_root, mountpoint = mount
    own = own_unified(host.proc_cgroup)
    if own is None:
        return "this process is in no cgroup v2"
    try:
        PurePosixPath(own).relative_to(mount_root)
    except ValueError:
        return f"this process's cgroup {own} lies outside the cgroup2 mount at {mountpoint}"
    paths = chain(own, mount_root)
    missing = [p for p in paths if p not in host.dirs]
    if missing:
        return f"the snapshot lacks {missing[0]}"
    top = host.dirs[paths[0]]
    if not set(NEEDED) <= top.controllers:
        lacking = " and ".join(c for c in NEEDED if c not in top.controllers)
        where = "cgroup v1 holds it (a hybrid host)" if top.is_root else "it is not delegated"
        return f"the {lacking} controller is not available in cgroup v2 at {mountpoint}: {where}"
    # the parent of the subtree: the deepest cgroup that may enable controllers, i.e. one that
    # holds no processes (or is the real root); the own cgroup only where it is the root
    candidates = paths if own == paths[0] else paths[:-1]
    reasons: list[str] = []
    for parent in reversed(candidates):
        found = _plan_under(host, mountpoint, mount_root, paths[: paths.index(parent) + 1])
        if isinstance(found, V2Plan):
            return found
        reasons.append(found)
    return reasons[0] if reasons else f"no cgroup above {own} may hold trainbed's subtree"


def _plan_under(
    host: HostCgroups, mountpoint: str, mount_root: str, route: list[str]
) -> V2Plan | str:
    """The plan with the subtree under ``route[-1]``, enabling the controllers along
    ``route`` (root first), or why not."""
    parent = route[-1]
    steps: list[Write | Mkdir] = []
    enabled: list[Write] = []
    for path in route:
        state = host.dirs[path]
        lacking = [c for c in NEEDED if c not in state.subtree_control]
        if not lacking:
            continue
        if state.populated and not state.is_root:
            return (
                f"{path} holds processes, so it may not pass cpu and memory to a child "
                "(trainbed never moves processes)"
            )
        if not state.writable:
            return f"this process may not write {path}/cgroup.subtree_control ({_need(lacking)})"
        write = Write(_file(mountpoint, mount_root, path, "cgroup.subtree_control"), _plus(lacking))
        steps.append(write)
        enabled.append(write)
    if not host.dirs[parent].writable:
        return f"this process may not create a cgroup under {parent}"
    subtree = _file(mountpoint, mount_root, parent, SUBTREE)
    steps.append(Mkdir(subtree))
    steps.append(Write(f"{subtree}/cgroup.subtree_control", _plus(list(NEEDED))))
    return V2Plan(steps=tuple(steps), subtree=subtree, enabled=tuple(enabled))


def _file(mountpoint: str, mount_root: str, path: str, name: str) -> str:
    relative = PurePosixPath(path).relative_to(mount_root)
    return str(PurePosixPath(mountpoint) / relative / name)


def _plus(controllers: list[str]) -> str:
    return " ".join(f"+{c}" for c in controllers)


def _need(controllers: list[str]) -> str:
    return "to enable " + " and ".join(controllers)


def undo(write: Write) -> Write:
    """The write that disables what ``write`` enabled."""
    return Write(write.path, write.value.replace("+", "-"))
