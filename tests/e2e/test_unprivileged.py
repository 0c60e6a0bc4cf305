"""The quickstart as a new user without root: limits that hold, read back, or the one-line
refusal before any trial; with --allow-unenforced the trials run, and each record says which
limit did not hold. The user is created for the test (useradd) and imports trainbed from a
readable copy (:mod:`tests.e2e.other_user`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.e2e.helpers import results
from tests.e2e.other_user import ROOT, other_user

QUICKSTART = ROOT / "experiments" / "quickstart.yaml"


def _short_quickstart(path: Path) -> Path:
    """The quickstart with its cpu factor alone, one replicate, one epoch: two trials."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    body = spec["spec"]
    body["factors"] = [f for f in body["factors"] if f["target"] == "resources.cpu"]
    body["design"] = {"type": "full", "replicates": 1, "randomize": False}
    body["trial"]["workload"].update(epochs=1)
    body["trial"]["workload"]["target_accuracy"]["max_epochs"] = 1
    path.write_text(yaml.safe_dump(spec))
    path.chmod(0o644)
    return path


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_quickstart_as_a_new_user() -> None:
    with other_user() as user:
        short = _short_quickstart(user.home / "short.yaml")
        out = user.home / "out"
        args = ("run", str(short), "--out", str(out), "--no-analyze")
        first = user.trainbed(*args, timeout=1200)
        text = first.stdout + first.stderr
        if first.returncode == 2:
            # no mechanism here holds 500m for this user: one line, before anything ran
            _assert_refused(first.stderr, text, out)
        else:
            # a delegated cgroup v2 subtree (read back) or the duty cycle (measured)
            assert first.returncode == 0, text[-3000:]
            found = results(out / "quickstart")
            assert len(found) == 2
            for result in found.values():
                enforcement = result["enforcement"]
                assert enforcement["cpu_enforced"] and not enforcement["allow_unenforced"]
                cores = enforcement["cpu_cores"]
                if enforcement["mode"].startswith("cgroup"):
                    assert enforcement["memory_enforced"]
                    for back in enforcement["ranks_read_back"]:
                        assert back["cpu_limit"] == cores
                        assert back["memory_limit_bytes"] == enforcement["memory_bytes"]
                else:
                    assert enforcement["mode"] == "duty-cycle", enforcement
                    assert enforcement["memory_enforced"] is False  # only watched
                    for achieved in enforcement["cpu_achieved_cores"]:
                        assert 0 < achieved <= cores * 1.1 + 0.02, enforcement
            shutil.rmtree(out)
        # affinity alone (the fallback) holds no 500m: the whole quickstart is refused at once
        fallback = {**user.env, "TRAINBED_ENFORCEMENT_MODE": "fallback"}
        spec = user.home / "quickstart.yaml"
        spec.write_text(QUICKSTART.read_text())
        spec.chmod(0o644)
        refused = user.trainbed("run", str(spec), "--out", str(out), "--no-analyze", env=fallback)
        _assert_refused(refused.stderr, refused.stdout + refused.stderr, out)
        # and runs with --allow-unenforced, each record saying what did not hold
        ran = user.trainbed(*args, "--allow-unenforced", env=fallback, timeout=1200)
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        found = results(out / "quickstart")
        by_cpu = {r["enforcement"]["cpu_cores"]: r["enforcement"] for r in found.values()}
        assert by_cpu[0.5]["cpu_enforced"] is False and by_cpu[0.5]["allow_unenforced"] is True
        assert by_cpu[0.5]["mode"] == "fallback" and by_cpu[0.5]["memory_enforced"] is False
        # a whole core per rank, two ranks on their own cores: affinity holds it as written
        assert by_cpu[1.0]["cpu_enforced"] is (len(set(by_cpu[1.0]["affinity"])) == 1)


def _assert_refused(stderr: str, text: str, out: Path) -> None:
    line = " ".join(stderr.split())
    assert "factor cpu (resources.cpu) level 500m is not enforced as written" in line, text
    assert "sudo " in line and "--allow-unenforced" in line, line
    assert "Traceback" not in text and not out.exists()
