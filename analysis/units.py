"""What each response measures and in which unit: one place for the report's labels.

The report's headings, table columns and axis labels, and the notebook API, take units from here,
so a number never appears without one. Times are seconds, accuracies fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ResponseInfo:
    """A response's unit and a one-line description of what it counts."""

    unit: str
    description: str


RESPONSES: dict[str, ResponseInfo] = {
    "accuracy": ResponseInfo(
        "fraction", "final validation accuracy (the last epoch's), a fraction in [0, 1]"
    ),
    "time": ResponseInfo(
        "s",
        "wall time from process start to stop: includes start-up (imports, data loading, "
        "rendezvous) and validation, not just training",
    ),
    "train_time": ResponseInfo(
        "s", "train time: the sum of the per-epoch train durations (no start-up, no validation)"
    ),
    "time_to_accuracy": ResponseInfo(
        "s",
        "time to accuracy: the worker's clock from the start of training to the end of the "
        "validation that met the target (censored when never met)",
    ),
    "throughput": ResponseInfo("samples/s", "training throughput in samples per second"),
    "energy": ResponseInfo("J", "energy of the trial in joules, where something could measure it"),
}


def info(response: str) -> ResponseInfo:
    """The unit and description of ``response``, including ``time_to_accuracy_<threshold>``."""
    if response in RESPONSES:
        return RESPONSES[response]
    if response.startswith("time_to_accuracy_"):
        threshold = response.removeprefix("time_to_accuracy_")
        return ResponseInfo(
            "s",
            f"time to accuracy >= {threshold}: the worker's clock at the first epoch whose "
            "validation accuracy reached it (censored when never reached)",
        )
    return ResponseInfo("", response)


def unit(response: str, *, log: bool = False) -> str:
    """The unit of ``response`` (of its natural log, ``log s``, when ``log``)."""
    base = info(response).unit
    return f"log {base}" if log and base else ("log" if log else base)


def label(response: str, *, log: bool = False) -> str:
    """An axis label: ``time (s)``, ``log(time) (log s)``, ``accuracy (fraction)``."""
    name = f"log({response})" if log else response
    u = unit(response, log=log)
    return f"{name} ({u})" if u else name
