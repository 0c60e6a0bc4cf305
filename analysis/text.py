"""Markdown tables and JSON-safe values for the report's trust sections (noise, robust
summaries, advisor, prediction): NaN prints blank in a table and null in ``quality.json``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


def md_table(frame: pd.DataFrame, fmt: str = ".4g") -> str:
    if frame.empty:
        return "_(none)_\n"
    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "| " + " | ".join("---" for _ in frame.columns) + " |",
    ]
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if value is None or (isinstance(value, float) and math.isnan(value)):
                cells.append("")
            elif isinstance(value, float | np.floating):
                cells.append(format(float(value), fmt))
            else:
                cells.append(str(value).replace("|", "\\|"))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [json_safe(row) for row in frame.to_dict(orient="records")]


def json_safe(value: Any) -> Any:
    """JSON-safe: NaN and infinities are null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
