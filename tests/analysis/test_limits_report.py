"""The Limits and Setup sections on a real results directory: the quickstart run with the local
fallback (tests/analysis/data/quickstart-fallback, see its README), where ``cpu`` 500m and 1 both
ran on one core per rank. The report must flag ``cpu`` at its top, mark its effect rows and
figures "not enforced", say so in ``analyze --json``, and show it in a real browser."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from trainbed.orchestrator.cli import app

from .chromium import Browser, Page, find

FIXTURE = Path(__file__).parent / "data" / "quickstart-fallback"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """``trainbed analyze --json`` on a copy of the fixture: the report folder and its JSON."""
    root = tmp_path_factory.mktemp("quickstart") / "quickstart"
    shutil.copytree(FIXTURE, root)
    result = CliRunner().invoke(app, ["analyze", str(root), "--json"])
    assert result.exit_code == 0, result.output
    return root / "report", json.loads(result.stdout)


def test_flag_at_the_top_and_limits_first_after_the_design(report: tuple[Path, dict]) -> None:
    folder, _ = report
    text = (folder / "index.md").read_text()
    first = text.split("\n## ", 1)[0]  # everything before the first section
    assert "> **Not enforced: cpu** (`resources.cpu`)" in first
    assert "levels 500m and 1 could both use 1 core" in first
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings[:3] == ["## Limits", "## Setup", "## Trials that did not succeed"]
    assert text.index("Defining relation") < text.index("## Limits")
    limits = text.split("## Limits", 1)[1].split("\n## ", 1)[0]
    assert "| cpu | `resources.cpu` | 500m | 4 | 0.5 cores | fallback | `affinity+threads` |" in (
        limits
    )
    assert "| 1 core | **no** |" in limits  # could use 1 core, not enforced as written
    setup = text.split("## Setup", 1)[1].split("\n## ", 1)[0]
    assert "| cgroup_mode | hybrid |" in setup and "All 8 trials" in setup


def test_effect_rows_and_figures_say_not_enforced(report: tuple[Path, dict]) -> None:
    folder, _ = report
    effects = pd.read_csv(folder / "effects_time.csv", keep_default_na=False)
    marked = dict(zip(effects["term"], effects["limits"], strict=True))
    assert marked["cpu"] == "not enforced"
    assert marked["batch_size"] == "" and marked["lr"] == ""
    text = (folder / "index.md").read_text()
    assert "| cpu (not enforced) |" in text.split("## time (s)", 1)[1]
    for stem in ("main_effects_time", "pareto_time", "half_normal_time"):
        svg = (folder / "figures" / f"{stem}.svg").read_text()
        assert "not enforced" in svg, stem  # matplotlib keeps text as text in SVG comments


def test_json_carries_the_limits(report: tuple[Path, dict]) -> None:
    _, data = report
    limits = data["limits"]
    assert limits["flagged"] == ["cpu"]
    (cpu,) = limits["factors"]
    assert cpu["target"] == "resources.cpu" and cpu["flagged"] is True
    low, high = cpu["levels"]
    assert (low["level"], low["requested"], low["effective"], low["enforced"]) == (
        "500m",
        0.5,
        [1.0],
        False,
    )
    assert low["enforced_by"] == ["affinity+threads"] and low["read_back"] == []
    assert (high["level"], high["effective"], high["enforced"]) == ("1", [1.0], True)
    (memory,) = limits["fixed"]
    assert memory["target"] == "resources.memory" and memory["levels"][0]["enforced"] is False
    (setup,) = data["setup"]
    assert len(setup["trials"]) == 8 and setup["host"]["cgroup_mode"] == "hybrid"


def test_report_page_shows_the_flag(report: tuple[Path, dict], tmp_path: Path) -> None:
    """The one browser check: the flag is rendered above the design, as a highlighted block."""
    binary = find()
    if binary is None:
        pytest.skip("chromium is not installed (scripts/ensure-test-packages installs it)")
    folder, _ = report
    with Browser(binary, tmp_path / "profile") as browser:
        page = Page(browser)
        page.open((folder / "index.html").as_uri())
        flag = page.evaluate(
            "(() => { const b = document.querySelector('blockquote'); return b && "
            "JSON.stringify({text: b.innerText, border: getComputedStyle(b).borderLeftColor, "
            "top: b.getBoundingClientRect().top, design: Array.from(document.querySelectorAll("
            "'p')).find(p => p.innerText.startsWith('Design:')).getBoundingClientRect().top}) })()"
        )
        assert flag, "no flag on the page"
        found = json.loads(flag)
        assert found["text"].startswith("Not enforced: cpu") and found["top"] < found["design"]
        assert found["border"] == "rgb(176, 0, 32)"
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
        assert headings[:2] == ["limits", "setup"]
        rows = page.evaluate(
            "Array.from(document.querySelectorAll('td')).filter(td => "
            "td.innerText === 'cpu (not enforced)').length"
        )
        assert rows >= 4  # one effects table per fitted response
        assert page.errors() == []
