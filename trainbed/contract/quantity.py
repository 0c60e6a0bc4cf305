"""Kubernetes resource quantities ("750m", "1.5Gi", "3G", "1e3"), parsed by Kubernetes' rules.

The worker needs the CPU limit to size its thread pools, and the spec validates every quantity a
user writes, but neither may import the Kubernetes client. The grammar is small and fixed
(k8s.io/apimachinery/pkg/api/resource), and a unit test checks this parser against the official
client's ``parse_quantity`` on a table of cases. The network keys use the same grammar for
bandwidth (bits/s, as the ``kubernetes.io/egress-bandwidth`` annotation) and a duration grammar
("5ms") for the added latency.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$"
)


def parse_quantity(value: str | int | float) -> Decimal:
    """Return the quantity's value in base units (cores for CPU, bytes for memory).

    Raises ``ValueError`` with the offending text when it is not a Kubernetes quantity.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite quantity")
        return Decimal(str(value))
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (examples: 750m, 1.5, 2Gi, 3G)")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as err:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from err
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * Decimal(10) ** int(suffix[1:])


def cpu_cores(value: str | int | float) -> float:
    """CPU quantity in cores, e.g. "750m" -> 0.75."""
    return float(parse_quantity(value))


def memory_bytes(value: str | int | float) -> int:
    """Memory quantity in bytes, rounded up as Kubernetes does, e.g. "1.5Gi" -> 1610612736."""
    return math.ceil(parse_quantity(value))


def threads_for_cpu(value: str | int | float | None, available: int) -> int:
    """Thread count for a CPU limit: ceil(limit), at least 1, at most the cores we have.

    Oversubscribing threads past the CPU quota makes a CPU factor confound with scheduler
    thrashing, so the worker and the pods' OMP_NUM_THREADS use this one rule.
    """
    if value is None:
        return max(1, available)
    return max(1, min(available, math.ceil(cpu_cores(value) - 1e-9)))


#: The range the kubelet and the CNI bandwidth plugin accept for ``kubernetes.io/*-bandwidth``
#: (bits/s): a level outside it would run locally and be rejected on a node, so both refuse it.
MIN_BANDWIDTH_BPS = 1_000
MAX_BANDWIDTH_BPS = 10**15


def bandwidth_bps(value: str | int | float) -> int:
    """A bandwidth quantity in bits/s, rounded up as Kubernetes does: "20M" -> 20000000.

    It is the ``kubernetes.io/egress-bandwidth`` annotation's unit (bits, not bytes), so "1G" is
    10^9 bit/s and "1Gi" 2^30 bit/s. Raises ``ValueError`` outside [1k, 1P], the kubelet's range.
    """
    bits = math.ceil(parse_quantity(value))
    if bits < MIN_BANDWIDTH_BPS:
        raise ValueError(f"{value!r} is below 1k bit/s, the least the bandwidth annotation takes")
    if bits > MAX_BANDWIDTH_BPS:
        raise ValueError(f"{value!r} is above 1P bit/s, the most the bandwidth annotation takes")
    return bits


_DURATION = re.compile(r"^(?P<num>(?:\d+\.?\d*|\.\d+))(?P<unit>ns|us|µs|ms|s)$")
_DURATION_UNITS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
}
#: The longest added delay a trial may ask for: beyond it the rendezvous and the collectives'
#: timeouts, not the network, decide what happens.
MAX_LATENCY_S = Decimal(10)


def parse_duration(value: str | int | float) -> Decimal:
    """A delay as Go and tc write one ("5ms", "0.5ms", "250us", "1s"), in seconds.

    A bare number is refused: "5" could be seconds or milliseconds, and a factor level that is
    off by 1000 is worse than an error. Raises ``ValueError`` naming the value.
    """
    text = str(value).strip()
    if isinstance(value, int | float) or re.fullmatch(r"\d+\.?\d*|\.\d+", text):
        raise ValueError(f"{value!r} has no unit: write it as 5ms, 250us or 1s")
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a duration (examples: 5ms, 0.5ms, 250us, 1s)")
    return Decimal(match["num"]) * _DURATION_UNITS[match["unit"]]


def latency_s(value: str | int | float) -> float:
    """An added one-way delay in seconds, in [0, 10 s]: "20ms" -> 0.02."""
    seconds = parse_duration(value)
    if seconds > MAX_LATENCY_S:
        raise ValueError(f"{value!r} is above {MAX_LATENCY_S} s, the longest delay trainbed adds")
    return float(seconds)
