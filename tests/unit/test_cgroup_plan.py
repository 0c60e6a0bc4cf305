"""The cgroup v2 plan over host layouts (tests/unit/cgroup_layouts/): which files get written,
in which order, and where trainbed's subtree goes; or why no plan exists.

The v1-hybrid layout is this development machine's, read off it; the process_api ones are the
GPU machine's (../shared/GPU-MACHINE.md); the systemd ones follow systemd's own layout of a
session scope and of a user manager with and without the delegation drop-in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainbed.orchestrator.local.cgroup_plan import (
    CgroupDir,
    HostCgroups,
    Mkdir,
    V2Plan,
    Write,
    chain,
    plan_v2,
    undo,
)

LAYOUTS = Path(__file__).parent / "cgroup_layouts"
FS = "/sys/fs/cgroup"
USER = f"{FS}/user.slice/user-1000.slice/user@1000.service"


def layout(name: str) -> HostCgroups:
    raw = json.loads((LAYOUTS / f"{name}.json").read_text())
    dirs = {
        path: CgroupDir(
            controllers=frozenset(state["controllers"].split()),
            subtree_control=frozenset(state["subtree_control"].split()),
            populated=state["populated"],
            writable=state["writable"],
            is_root=state["is_root"],
        )
        for path, state in raw["dirs"].items()
    }
    return HostCgroups(proc_cgroup=raw["proc_cgroup"], mountinfo=raw["mountinfo"], dirs=dirs)


def enable(path: str, value: str = "+cpu +memory") -> Write:
    return Write(f"{path}/cgroup.subtree_control", value)


def subtree(parent: str) -> list[Write | Mkdir]:
    return [Mkdir(f"{parent}/trainbed"), enable(f"{parent}/trainbed")]


PLANS = [
    # the GPU machine: enable under /process_api, the subtree beside our leaf
    (
        "v2-process-api-leaf",
        [enable(f"{FS}/process_api"), *subtree(f"{FS}/process_api")],
        f"{FS}/process_api/trainbed",
    ),
    # /process_api holds a process: it may not pass controllers on, so the subtree goes under
    # the root, which already passes cpu and memory (nothing to enable)
    ("v2-process-api-populated-parent", subtree(FS), f"{FS}/trainbed"),
    # the real root may hold processes and still enable controllers
    ("v2-own-root", [enable(FS), *subtree(FS)], f"{FS}/trainbed"),
    # root in an ssh session: cpu enabled top-down, the subtree beside the session scope
    (
        "v2-session-scope-root",
        [
            enable(f"{FS}/user.slice", "+cpu"),
            enable(f"{FS}/user.slice/user-0.slice", "+cpu"),
            *subtree(f"{FS}/user.slice/user-0.slice"),
        ],
        f"{FS}/user.slice/user-0.slice/trainbed",
    ),
    # no root: the user manager's delegated app.slice is the user's own
    (
        "v2-user-manager-delegated",
        [enable(f"{USER}/app.slice", "+cpu"), *subtree(f"{USER}/app.slice")],
        f"{USER}/app.slice/trainbed",
    ),
]


@pytest.mark.parametrize(("name", "steps", "where"), PLANS, ids=[p[0] for p in PLANS])
def test_plan(name: str, steps: list[Write | Mkdir], where: str) -> None:
    plan = plan_v2(layout(name))
    assert isinstance(plan, V2Plan), plan
    assert list(plan.steps) == steps
    assert plan.subtree == where
    # what is undone at the end: exactly the enabling writes above the subtree
    assert list(plan.enabled) == [s for s in steps if isinstance(s, Write)][:-1]


REFUSED = [
    ("v1-hybrid", "cpu and memory controller is not available in cgroup v2"),
    ("v1-hybrid", "cgroup v1 holds it"),
    ("v2-container-namespace-root", "/ holds processes"),
    ("v2-session-scope-user", "may not write /user.slice/cgroup.subtree_control"),
    # without the drop-in, cpu stops at the top: the first write the user may not make
    (
        "v2-user-manager-undelegated",
        "may not write /user.slice/cgroup.subtree_control (to enable cpu)",
    ),
]


@pytest.mark.parametrize(("name", "why"), REFUSED)
def test_no_plan(name: str, why: str) -> None:
    reason = plan_v2(layout(name))
    assert isinstance(reason, str) and why in reason, reason


def test_plan_never_writes_into_a_populated_non_root_cgroup() -> None:
    for path in LAYOUTS.glob("*.json"):
        host = layout(path.stem)
        plan = plan_v2(host)
        if not isinstance(plan, V2Plan):
            continue
        for step in plan.steps:
            if isinstance(step, Write) and "/trainbed/" not in step.path:
                cgroup = step.path.removeprefix(FS).removesuffix("/cgroup.subtree_control")
                state = host.dirs[cgroup or "/"]
                assert state.is_root or not state.populated, (path.stem, step)


def test_chain_and_undo() -> None:
    assert chain("/a/b") == ["/", "/a", "/a/b"]
    assert chain("/") == ["/"]
    assert chain("/ns/a", "/ns") == ["/ns", "/ns/a"]
    assert undo(Write("x", "+cpu +memory")) == Write("x", "-cpu -memory")


def test_snapshot_must_cover_the_chain() -> None:
    host = layout("v2-process-api-leaf")
    partial = HostCgroups(
        proc_cgroup=host.proc_cgroup, mountinfo=host.mountinfo, dirs={"/": host.dirs["/"]}
    )
    assert plan_v2(partial) == "the snapshot lacks /process_api"
