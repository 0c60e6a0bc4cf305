"""Labels with units for the report, from the contract's response vocabulary.

The report's headings, table columns and axis labels, and the notebook API, take units from here,
so a number never appears without one. Times are seconds, accuracies fractions in [0, 1].
"""

from __future__ import annotations

from trainbed.contract.responses import RESPONSES, ResponseInfo

__all__ = ["RESPONSES", "ResponseInfo", "info", "label", "unit"]


def info(response: str) -> ResponseInfo:
    """The unit and description of ``response``, including ``time_to_accuracy_<threshold>``."""
    if response in RESPONSES:
        return RESPONSES[response]
    if response.startswith("time_to_accuracy_"):
        threshold = response.removeprefix("time_to_accuracy_")
        return ResponseInfo(
            RESPONSES["time_to_accuracy"].field,
            "s",
            f"time to accuracy >= {threshold}: the worker's clock at the first epoch whose "
            "validation accuracy reached it (censored when never reached)",
        )
    return ResponseInfo("", "", response)


def unit(response: str, *, log: bool = False) -> str:
    """The unit of ``response`` (of its natural log, ``log s``, when ``log``)."""
    base = info(response).unit
    return f"log {base}" if log and base else ("log" if log else base)


def label(response: str, *, log: bool = False) -> str:
    """An axis label: ``time (s)``, ``log(time) (log s)``, ``accuracy (fraction)``."""
    name = f"log({response})" if log else response
    u = unit(response, log=log)
    return f"{name} ({u})" if u else name
