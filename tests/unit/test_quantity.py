"""trainbed's quantity parser agrees with the official Kubernetes client's, case by case."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes.utils import parse_quantity as official

from trainbed.contract.quantity import cpu_cores, memory_bytes, parse_quantity, threads_for_cpu

CASES = [
    "750m",
    "1.5",
    "1500m",
    "1.5Gi",
    "3G",
    "1e3",
    "2Ki",
    ".5",
    "100n",
    "1E2",
    "12e-3",
    "3Gi",
    "512Mi",
    "1",
    "0.25",
    "250m",
    "7Ti",
    "1k",
    "5M",
    "2u",
    "1Ei",
    "4P",
]


@pytest.mark.parametrize("text", CASES)
def test_matches_kubernetes_client(text: str) -> None:
    assert parse_quantity(text) == Decimal(official(text))


@pytest.mark.parametrize("text", ["", "fast", "1.5Xi", "Gi", "1.2.3", "--1", "1e", "0x10"])
def test_rejects_what_kubernetes_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quantity(text)
    with pytest.raises(ValueError):
        official(text)


@pytest.mark.parametrize(
    ("cpu", "available", "threads"),
    [
        ("750m", 2, 1),
        ("1", 2, 1),
        ("1500m", 2, 2),
        ("2", 2, 2),
        ("4", 2, 2),
        ("100m", 16, 1),
        (None, 3, 3),
        ("2.5", 16, 3),
    ],
)
def test_threads_follow_the_cpu_limit(cpu: str | None, available: int, threads: int) -> None:
    assert threads_for_cpu(cpu, available) == threads


def test_units() -> None:
    assert cpu_cores("750m") == 0.75
    assert memory_bytes("1.5Gi") == 1610612736
