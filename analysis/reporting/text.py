"""JSON-safe values for the report's trust sections (noise, robust
summaries, advisor, prediction): NaN is null in ``quality.json``. Their Markdown tables
are :func:`trainbed.analysis.reporting.tables.markdown`'s."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd


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
