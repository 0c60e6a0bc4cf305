"""Local network shaping for real: namespaces, veth, tbf and the delay (netem or the delay line),
read back from the system; nothing left behind after a killed driver and a resume; a clear
refusal where the process may not do it. Needs root, ``ip`` and ``tc`` (skipped without)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import design_ids, results, run_cli, write_campaign
from tests.e2e.other_user import other_user
from trainbed.contract.trial import Resources, TrialSpec, Workload
from trainbed.orchestrator.local.network import network_key
from trainbed.orchestrator.local.network_host import HostNetwork, NetworkError, probe

ROOT_AND_TOOLS = os.geteuid() == 0 and shutil.which("ip") and shutil.which("tc")
pytestmark = pytest.mark.skipif(not ROOT_AND_TOOLS, reason="needs root, ip and tc")


def _names() -> set[str]:
    """Every network namespace and link on the host, and every entry of the temporary folder
    (where the delay line keeps its files), by name."""
    netns = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True).stdout
    return (
        {n["name"] for n in json.loads(netns or "[]")}
        | {link["ifname"] for link in json.loads(links or "[]")}
        | set(os.listdir(tempfile.gettempdir()))
    )


def _ours(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("tbn")}


def _trial(**resources: str) -> TrialSpec:
    return TrialSpec(
        campaign="net",
        trial_id="t0000000001",
        seed=1,
        workload=Workload(parallelism=2),
        resources=Resources(**resources),
    )


@pytest.mark.timeout(120)
def test_enforcement_is_read_back_from_tc(tmp_path: Path) -> None:
    before = _ours(_names())
    network = HostNetwork(probe(need_delay=True))
    # 20000007 bit/s is not a whole number of bytes: tc keeps 2500000 B/s, and the record says
    # what tc says, not what the spec said
    plan = network.plan(tmp_path, _trial(bandwidth="20000007", latency="20ms"))
    record = network.up(plan)
    try:
        assert record["bandwidth_bps"] == 20_000_000
        assert record["latency_s"] == pytest.approx(0.02)
        assert record["latency_enforced_by"] in ("netem", "nfqueue-delay-line")
        assert [r["address"] for r in record["ranks"]] == ["10.77.0.2", "10.77.0.3"]
        assert {link.netns for link in plan.ranks} <= _names()
        # change a rank's qdisc behind trainbed's back: the read-back sees it and refuses
        ns = plan.ranks[1].netns
        change = ["tc", "-n", ns, "qdisc", "change", "dev", "eth0", "root", "handle", "1:"]
        subprocess.run([*change, "tbf", "rate", "5mbit", "burst", "65536", "limit", "1048576"])
        with pytest.raises(NetworkError, match="differs"):
            network.read_back(plan, record["latency_s"])
    finally:
        network.down(plan)
    assert _ours(_names()) == before


@pytest.mark.timeout(60)
def test_unshaped_trial_of_a_shaped_campaign_still_gets_namespaces(tmp_path: Path) -> None:
    network = HostNetwork(None)
    plan = network.plan(tmp_path, _trial(latency="0ms"))
    record = network.up(plan)
    try:
        assert record["bandwidth_bps"] is None and record["latency_s"] is None
        assert record["ranks"][0]["qdiscs"] == ["noqueue"]
        assert plan.ranks[0].netns in _names()
    finally:
        network.down(plan)


def _delay_lines(root: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "local.delay_line" in cmd and "--ready" in cmd:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_killed_driver_leaves_nothing_after_resume(tmp_path: Path) -> None:
    spec = write_campaign(
        tmp_path / "c.yaml",
        "netcrash",
        [{"name": "bandwidth", "target": "resources.bandwidth", "levels": ["20M", None]}],
        design={"type": "full", "replicates": 1, "randomize": False},
        workload={"parallelism": 2, "epochs": 1},
        resources={"latency": "2ms"},
        timeout_s=900,  # generous: on a loaded 2-core machine torch alone takes minutes to import
    )
    out = tmp_path / "out"
    root = out / "netcrash"
    names_before = _names()
    lines_before = set(_delay_lines(root))
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainbed.orchestrator.cli", "run", str(spec)]
        + ["--out", str(out), "--no-analyze"],
        env={**os.environ, "TRAINBED_NO_PROGRESS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    first = None
    while time.time() < deadline and proc.poll() is None:
        if (root / "design.csv").exists():
            first = design_ids(root)[0]
            key = network_key(str(out.resolve() / "netcrash"), "netcrash", first)
            if any(f"tbn-{key}-r1" == name for name in _names()) and any(
                (root / "trials" / first / "logs").glob("rank-1.log")
            ):
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the first trial's network never came up")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = _ours(_names()) - _ours(names_before)
    assert left, "a killed driver leaves its trial's namespaces (the case resume must clean)"
    run_cli("run", str(spec), "--out", str(out), "--resume", "--no-analyze", timeout=2000)
    found = results(root)
    assert sorted(found) == sorted(design_ids(root))
    assert all(r["status"] == "succeeded" for r in found.values()), found
    rates = sorted(str(r["enforcement"]["network"]["bandwidth_bps"]) for r in found.values())
    assert rates == ["20000000", "None"]
    assert {r["enforcement"]["network"]["latency_s"] for r in found.values()} == {0.002}
    assert _ours(_names()) == _ours(names_before), "namespaces or links left behind"
    assert not left & _names()
    assert set(_delay_lines(root)) <= lines_before, "a delay line outlived its trial"


@pytest.mark.timeout(120)
def test_refusal_without_privileges() -> None:
    """As an unprivileged user the real probe refuses in one line, and a campaign that sets
    bandwidth exits 2 before its first trial (nothing is written). The user imports trainbed
    from a readable copy, so this holds from a checkout in a private directory too."""
    with other_user(65534) as user:
        code = (
            "from trainbed.orchestrator.local.network_host import probe\n"
            "try:\n    probe(True)\nexcept Exception as err:\n"
            "    print(type(err).__name__, err)\n"
        )
        probed = subprocess.run(
            [*user.drop, user.python, "-c", code],
            capture_output=True,
            text=True,
            env=user.env,
            cwd=user.home,
        )
        assert probed.stdout.startswith("NetworkUnavailable network namespaces and tc need root")
        assert "uid 65534" in probed.stdout
        spec = write_campaign(
            user.home / "c.yaml",
            "netrefused",
            [{"name": "bandwidth", "target": "resources.bandwidth", "levels": ["20M", "1G"]}],
            workload={"parallelism": 2},
        )
        spec.chmod(0o644)
        out = user.home / "out"
        proc = user.trainbed("run", str(spec), "--out", str(out), "--no-analyze", timeout=100)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        text = " ".join((proc.stdout + proc.stderr).split())
        field = "resources.bandwidth (spec.factors[0].levels)"
        assert f"{field}: cannot be enforced on this machine" in text, text
        assert "need root" in text and "Traceback" not in text
        assert not out.exists(), "refused before anything was written"
