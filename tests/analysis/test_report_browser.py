"""The HTML report in a real browser: headless Chromium (Debian's ``chromium`` package) loads
index.html from disk, every image must have decoded (naturalWidth > 0) from an inline data URI,
the console must stay free of errors, and the screenshots must show a painted page and a painted
figure. ``make test`` installs Chromium first where it can (scripts/ensure-test-packages)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainbed.analysis.reading.synthetic import SyntheticCampaign, write_results
from trainbed.analysis.reporting.report import write_report

from .chromium import Browser, Page, find

IMAGES = """JSON.stringify(Array.from(document.images).map(i => ({
    src: i.getAttribute('src').slice(0, 22), complete: i.complete,
    width: i.naturalWidth, height: i.naturalHeight})))"""
FIRST_FIGURE = """(() => { const r = document.images[0].getBoundingClientRect();
    return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })()"""


def _painted(path: Path) -> tuple[float, float, int]:
    """Shares of the screenshot's pixels that are not white, and that are clearly coloured
    (matplotlib's blues and reds, not grey text), and its width in pixels."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=int)
    not_white = (pixels < 235).any(axis=2).mean()
    colour = (pixels.max(axis=2) - pixels.min(axis=2) > 60).mean()
    return float(not_white), float(colour), pixels.shape[1]


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find()
    if binary is None:
        pytest.skip(
            "chromium is not installed and could not be (scripts/ensure-test-packages needs root "
            "and apt-get)"
        )
    return binary


def test_report_page_loads_every_figure_without_console_errors(
    chromium: str, tmp_path: Path
) -> None:
    root = write_results(
        tmp_path, SyntheticCampaign(effects={("cpu",): -5.0, ("epochs",): 8.0}, replicates=2)
    )
    report = write_report(root)
    # the page stands alone: moved away from its figures folder it must still show everything
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(report / "index.html", alone / "index.html")
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Browser(chromium, tmp_path / "profile") as browser:
        page = Page(browser)
        page.open((alone / "index.html").as_uri())
        images = json.loads(page.evaluate(IMAGES))
        figures = (report / "index.md").read_text().count("](figures/")
        assert figures >= 7 and len(images) == figures, images
        for image in images:
            assert image["src"].startswith("data:image/png;base64"), image
            assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
        assert page.evaluate("document.querySelectorAll('.toc a').length") >= 5
        headings = page.evaluate("Array.from(document.querySelectorAll('h2')).map(h => h.id)")
        assert headings.index("trials-that-did-not-succeed") < headings.index("time-s")
        top = page.screenshot(shots / "top.png")
        box = page.evaluate(FIRST_FIGURE)
        figure = page.screenshot(shots / "first-figure.png", clip=box)
        assert page.errors() == []
    print(f"screenshots: {shots}")
    not_white, _, _ = _painted(top)
    assert not_white > 0.01, "the top of the page is blank"
    not_white, colour, width = _painted(figure)
    assert not_white > 0.05 and colour > 0.002 and width > 300, (not_white, colour, width)
