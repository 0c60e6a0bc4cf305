"""The network keys' quantities: bandwidth in bits/s as Kubernetes reads the bandwidth
annotations (checked against the official client), and durations for the added latency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils import parse_quantity as official

from trainbed.contract.quantity import bandwidth_bps, latency_s, parse_duration


@pytest.mark.parametrize(
    ("text", "bits"),
    [("20M", 20_000_000), ("1G", 10**9), ("1Gi", 2**30), ("1k", 1000), ("1.5M", 1_500_000),
     ("2500k", 2_500_000), ("1P", 10**15), (1000, 1000), ("1e6", 10**6)],
)  # fmt: skip
def test_bandwidth_is_bits_per_second_as_kubernetes_reads_it(text: str | int, bits: int) -> None:
    assert bandwidth_bps(text) == bits
    assert Decimal(official(str(text))) == bits


@pytest.mark.parametrize(
    ("text", "reason"),
    [("999", "below 1k"), ("0.5k", "below 1k"), ("2P", "above 1P"), ("20 Mbit", "not a Kub"),
     ("fast", "not a Kub"), ("-1M", "below 1k")],
)  # fmt: skip
def test_bandwidth_refusals(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        bandwidth_bps(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5ms", Decimal("0.005")), ("0.5ms", Decimal("0.0005")), ("250us", Decimal("0.00025")),
     ("250µs", Decimal("0.00025")), ("1s", Decimal(1)), (".02s", Decimal("0.02")),
     ("0ms", Decimal(0)), ("100ns", Decimal("1E-7"))],
)  # fmt: skip
def test_durations(text: str, seconds: Decimal) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("value", "reason"),
    [(5, "no unit"), ("5", "no unit"), (0.5, "no unit"), ("5 ms", "not a duration"),
     ("5m", "not a duration"), ("-5ms", "not a duration"), ("1h", "not a duration"),
     ("11s", "above 10")],
)  # fmt: skip
def test_latency_refusals(value: object, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        latency_s(value)  # type: ignore[arg-type]
