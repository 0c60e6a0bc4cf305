"""The worker reads its own cgroup's limits back: the parsers on table cases (a container's
cgroup v1 view, the host's, cgroup v2, no limit), and the reader on a real cgroup of this
machine, in a process placed in it (root only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from trainbed.worker import cgroup_limits as cg
from trainbed.worker.provenance import limits_confirmed

POD = "/kubepods/podf00/0123abcd"
# A container's view (cgroup v1, no cgroup namespace): its own cgroup is each mount's root.
CONTAINER_CGROUP = f"""12:memory:{POD}
4:cpu,cpuacct:{POD}
1:name=systemd:{POD}
"""
CONTAINER_MOUNTINFO = f"""\
600 500 0:52 / / ro,relatime - overlay overlay rw,lowerdir=/a
610 600 0:60 {POD} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
611 600 0:61 {POD} /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory
612 600 0:62 {POD} /sys/fs/cgroup/systemd ro,nosuid - cgroup cgroup rw,xattr,name=systemd
"""
# The host's view: each hierarchy's root is mounted.
HOST_MOUNTINFO = """\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw shared:10 - cgroup cgroup rw,memory
"""
V2_CGROUP = "0::/kubepods.slice/pod1/c1\n"
V2_MOUNTINFO = "29 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"


@pytest.mark.parametrize(
    ("controller", "proc_cgroup", "mountinfo", "expected"),
    [
        ("cpu", CONTAINER_CGROUP, CONTAINER_MOUNTINFO, "/sys/fs/cgroup/cpu,cpuacct"),
        ("memory", CONTAINER_CGROUP, CONTAINER_MOUNTINFO, "/sys/fs/cgroup/memory"),
        ("systemd", CONTAINER_CGROUP, CONTAINER_MOUNTINFO, "/sys/fs/cgroup/systemd"),
        ("cpu", CONTAINER_CGROUP, HOST_MOUNTINFO, f"/sys/fs/cgroup/cpu,cpuacct{POD}"),
        ("", V2_CGROUP, V2_MOUNTINFO, "/sys/fs/cgroup/kubepods.slice/pod1/c1"),
        ("cpu", V2_CGROUP, V2_MOUNTINFO, None),  # v2 only: no v1 cpu mount
        ("pids", CONTAINER_CGROUP, CONTAINER_MOUNTINFO, None),  # not in /proc/self/cgroup
        # a cgroup outside the mount's root (another container's mount) is not ours to read
        ("cpu", "4:cpu,cpuacct:/elsewhere\n", CONTAINER_MOUNTINFO, None),
    ],
)
def test_cgroup_dir(controller: str, proc_cgroup: str, mountinfo: str, expected: str | None):
    found = cg.cgroup_dir(controller, proc_cgroup, mountinfo)
    assert found == (Path(expected) if expected else None)


def test_mountinfo_unescapes_paths() -> None:
    line = "1 2 0:3 /a\\040b /sys/fs/cgroup/my\\040cpu rw - cgroup cgroup rw,cpu\n"
    assert cg.parse_mountinfo(line)["cpu"] == ("/a b", "/sys/fs/cgroup/my cpu")


@pytest.mark.parametrize(
    ("quota", "period", "expected"),
    [
        ("50000\n", "100000\n", {"cpu_quota_us": 50000, "cpu_period_us": 100000, "cpu_limit": 0.5}),
        ("-1\n", "100000\n", {"cpu_quota_us": None, "cpu_period_us": 100000, "cpu_limit": None}),
        ("150000", "100000", {"cpu_quota_us": 150000, "cpu_period_us": 100000, "cpu_limit": 1.5}),
    ],
)
def test_cpu_v1(quota: str, period: str, expected: dict) -> None:
    assert cg.cpu_v1(quota, period) == expected


@pytest.mark.parametrize(
    ("text", "cores"), [("50000 100000\n", 0.5), ("max 100000\n", None), ("200000 100000", 2.0)]
)
def test_cpu_v2(text: str, cores: float | None) -> None:
    assert cg.cpu_v2(text)["cpu_limit"] == cores


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1610612736\n", 1610612736),
        ("9223372036854771712\n", None),  # v1's "no limit"
        ("max\n", None),  # v2's
    ],
)
def test_memory_limit(text: str, expected: int | None) -> None:
    assert cg.memory_limit(text) == expected


def test_read_own_limits_from_a_fake_proc(tmp_path: Path) -> None:
    """The whole reader over a container's view, with the cgroup files where mountinfo says."""
    cpu, memory = tmp_path / "cpu", tmp_path / "memory"
    cpu.mkdir()
    memory.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("50000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    (memory / "memory.limit_in_bytes").write_text(f"{1536 * 2**20}\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(CONTAINER_CGROUP)
    mountinfo = CONTAINER_MOUNTINFO.replace("/sys/fs/cgroup/cpu,cpuacct", str(cpu))
    (proc / "mountinfo").write_text(mountinfo.replace("/sys/fs/cgroup/memory", str(memory)))
    record = cg.read_own_limits(proc)
    assert record == {
        "cgroup_version": 1,
        "cgroup": POD,
        "cpu_quota_us": 50000,
        "cpu_period_us": 100000,
        "cpu_limit": 0.5,
        "memory_limit_bytes": 1536 * 2**20,
    }
    described = {"mode": "kubernetes", "cpu": "500m", "memory": "1536Mi", "read_back": record}
    assert limits_confirmed(described) is True
    assert limits_confirmed({**described, "cpu": "1"}) is False
    (cpu / "cpu.cfs_period_us").unlink()
    broken = cg.read_own_limits(proc)
    assert broken["cpu_limit"] is None and "cpu.cfs_period_us" in broken["errors"][0]
    assert broken["memory_limit_bytes"] == 1536 * 2**20


def _v1_roots() -> tuple[Path, Path] | None:
    cpu, memory = Path("/sys/fs/cgroup/cpu"), Path("/sys/fs/cgroup/memory")
    if (cpu / "cpu.cfs_quota_us").exists() and (memory / "memory.limit_in_bytes").exists():
        return cpu, memory
    return None


@pytest.mark.skipif(os.geteuid() != 0 or _v1_roots() is None, reason="needs root and cgroup v1")
def test_read_back_in_a_real_cgroup() -> None:
    """A process placed in a cgroup with a 300m quota and 700 MiB reads exactly that back, and
    ``read_enforcement`` records it with ``limits_confirmed``."""
    roots = _v1_roots()
    assert roots is not None
    name = f"trainbed-test-{uuid.uuid4().hex[:8]}"
    dirs = [root / name for root in roots]
    for d in dirs:
        d.mkdir()
    try:
        (dirs[0] / "cpu.cfs_period_us").write_text("100000")
        (dirs[0] / "cpu.cfs_quota_us").write_text("30000")
        (dirs[1] / "memory.limit_in_bytes").write_text(str(700 * 2**20))
        code = (
            "import json, os, sys\n"
            f"for d in {[str(d) for d in dirs]!r}:\n"
            "    open(d + '/cgroup.procs', 'w').write(str(os.getpid()))\n"
            "from trainbed.worker.provenance import read_enforcement\n"
            "print(json.dumps(read_enforcement()))\n"
        )
        env = {
            **os.environ,
            "TRAINBED_ENFORCEMENT": json.dumps(
                {"mode": "kubernetes", "cpu": "300m", "memory": "700Mi"}
            ),
        }
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        record = json.loads(done.stdout)
        back = record["read_back"]
        assert back["cgroup_version"] == 1 and back["cgroup"] == f"/{name}"
        assert (back["cpu_quota_us"], back["cpu_limit"]) == (30000, 0.3)
        assert back["memory_limit_bytes"] == 700 * 2**20
        assert record["limits_confirmed"] is True
    finally:
        for d in dirs:
            d.rmdir()
