"""What a trial ran on: the cpuinfo and mountinfo parsers on real layouts (x86, ARM, RISC-V;
cgroup v1, v2, systemd's hybrid, a container), and the reader on this machine."""

from __future__ import annotations

import os
import platform

import pytest

from trainbed.contract.host import SETUP_FIELDS, HostInfo
from trainbed.contract.records import Result
from trainbed.worker.host_info import cgroup_mode, cpu_model, nccl_text, read_host

X86 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
cpu MHz\t\t: 2450.000

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13 64-Core Processor
"""
# big.LITTLE-style x86 (two model names) and an old ARM kernel's "Processor" line
MIXED = "model name\t: Intel(R) Core(TM) i7\nmodel name\t: Intel(R) Atom(TM)\n"
OLD_ARM = "Processor\t: AArch64 Processor rev 4 (aarch64)\nprocessor\t: 0\nBogoMIPS\t: 38.40\n"
NEW_ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"
RISCV = "processor\t: 0\nhart\t\t: 0\nisa\t\t: rv64imafdc\nuarch\t\t: sifive,u74-mc\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (X86, "AMD EPYC 7B13 64-Core Processor"),
        (MIXED, "Intel(R) Core(TM) i7 + Intel(R) Atom(TM)"),
        (OLD_ARM, "AArch64 Processor rev 4 (aarch64)"),
        (NEW_ARM, None),  # only part numbers: unknown, not a guessed name
        (RISCV, "sifive,u74-mc"),
        ("", None),
        ("model name\t:\n", None),
    ],
)
def test_cpu_model(text: str, expected: str | None) -> None:
    assert cpu_model(text) == expected


# this development machine: v1 controllers, systemd's cgroup2 at unified/ beside them
HYBRID = """\
25 21 0:22 / /sys/fs/cgroup ro,nosuid shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
27 25 0:24 / /sys/fs/cgroup/systemd rw,nosuid shared:10 - cgroup cgroup rw,xattr,name=systemd
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:13 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
"""
# Ubuntu 24.04: the unified hierarchy alone
V2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
# a container on a v1 host: its own cgroups, v1 controllers, no cgroup2
V1_CONTAINER = """\
600 500 0:52 / / ro,relatime - overlay overlay rw,lowerdir=/a
610 600 0:60 /kubepods/pod1/c1 /sys/fs/cgroup/cpu,cpuacct ro - cgroup cgroup rw,cpu,cpuacct
611 600 0:61 /kubepods/pod1/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory
"""
# systemd's legacy mode without controllers: only the named systemd hierarchy is v1
NAMED_ONLY_AND_V2 = """\
26 25 0:23 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
27 25 0:24 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
"""
NONE = "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HYBRID, "hybrid"),
        (V2, "v2"),
        (V1_CONTAINER, "v1"),
        (NAMED_ONLY_AND_V2, "v2"),
        (NONE, None),
        ("garbage without a separator\n", None),
    ],
)
def test_cgroup_mode(text: str, expected: str | None) -> None:
    assert cgroup_mode(text) == expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [((2, 21, 5), "2.21.5"), ([2, 18, 1], "2.18.1"), (2708, "2.7.8"), (0, None), ((), None)],
)
def test_nccl_text(version: object, expected: str | None) -> None:
    assert nccl_text(version) == expected


def test_read_host_on_this_machine() -> None:
    """What the worker records here, checked against the system's own answers."""
    host = read_host("cpu")
    assert host.kernel == platform.release()
    assert host.cpu_count == os.cpu_count()
    assert host.cpu_affinity == len(os.sched_getaffinity(0))
    assert host.cgroup_mode in ("v1", "v2", "hybrid")
    import torch

    if not torch.cuda.is_available():  # no GPU: nothing about one is invented
        assert (host.gpu_model, host.gpu_count, host.nccl) == (None, None, None)
    assert host.cuda == torch.version.cuda


def test_host_round_trips_through_result() -> None:
    host = HostInfo(kernel="6.8.0", cpu_model="x", cpu_count=16, cgroup_mode="v2", cudnn=90100)
    result = Result(status="succeeded", host=host)
    back = Result.model_validate_json(result.to_json())
    assert back.host == host
    assert Result.model_validate_json('{"status": "failed"}').host is None
    assert "cpu_affinity" not in SETUP_FIELDS
    assert host.setup_key() == HostInfo(**{**host.model_dump(), "cpu_affinity": 3}).setup_key()
