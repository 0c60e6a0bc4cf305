"""The report as one self-contained HTML page: the Markdown rendered, a table of contents, and
every figure inline as a ``data:`` URI, so the single file can be mailed or attached and still
shows everything (the PNG and SVG files stay beside it for other uses).
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em;
       color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.toc { background: #f7f7f7; border: 1px solid #ddd; padding: 0.3em 1em; display: inline-block; }
.toc ul { margin: 0.2em 0; }
h2 { border-bottom: 1px solid #ddd; margin-top: 1.6em; }
code { background: #f3f3f3; padding: 0 3px; }
blockquote { border-left: 4px solid #b00020; background: #fff4f4; padding: 0.2em 1em; }
"""

_IMAGE = re.compile(r'src="(figures/[^"]+\.png)"')
#: a table cell that holds a number or an interval: right-aligned, so digits line up
_NUMBER = re.compile(r"<td>(-?\d[\d.]*(?:e[-+]?\d+)?|\[-?\d[^<\]]*\]|nan|inf)</td>")


def _inline(match: re.Match[str], root: Path) -> str:
    path = root / match.group(1)
    if not path.is_file():
        return match.group(0)  # left as a link: the browser test catches a missing figure
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'src="data:image/png;base64,{data}"'


def render(markdown_text: str, title: str, root: Path) -> str:
    """The page for ``markdown_text``, whose figures are ``figures/*.png`` under ``root``."""
    import markdown

    head, _, rest = markdown_text.partition("\n")
    if not head.startswith("# "):  # no title line: the contents go first
        head, rest = "", markdown_text
    body = markdown.markdown(
        f"{head}\n\n**Contents**\n\n[TOC]\n\n{rest}",
        extensions=["tables", "toc"],
        extension_configs={"toc": {"toc_depth": "2-3"}},
    )
    body = _IMAGE.sub(lambda m: _inline(m, root), body)
    body = _NUMBER.sub(r'<td class="n">\1</td>', body)
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n"
        f"<body>\n{body}\n</body></html>\n"
    )
