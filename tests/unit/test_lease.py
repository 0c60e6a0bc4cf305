"""The lease rule (kube/control/lease.py): who reconciles a campaign, as a pure function of the
Lease as read, what was seen of it before, and this process's monotonic clock."""

from __future__ import annotations

from typing import Any

import pytest

from trainbed.orchestrator.kube.control.lease import (
    LEASE_S,
    Observed,
    decide,
    lease_name,
    lease_object,
)

ME, OTHER = "laptop/12/abc123", "pod-x/1/def456"


def lease(holder: str, renewed: str = "2026-12-03T10:00:00.000000Z", duration: int = 15) -> Any:
    return {
        "spec": {"holderIdentity": holder, "renewTime": renewed, "leaseDurationSeconds": duration}
    }


@pytest.mark.parametrize(
    ("read", "seen", "now", "action", "since"),
    [
        (None, None, 100.0, "create", None),  # no lease yet: make it
        (lease(ME), None, 100.0, "renew", None),  # ours: renew
        (lease(""), None, 100.0, "take", None),  # released on a clean stop: at once
        (lease(OTHER), None, 100.0, "wait", 100.0),  # first sight of another's: start the clock
        (lease(OTHER), Observed(OTHER, "2026-12-03T10:00:00.000000Z", 90.0), 104.9, "wait", 90.0),
        (lease(OTHER), Observed(OTHER, "2026-12-03T10:00:00.000000Z", 90.0), 105.0, "take", 90.0),
        # renewed meanwhile: the clock starts again, however long ago the first sight was
        (
            lease(OTHER, "2026-12-03T10:00:05.000000Z"),
            Observed(OTHER, "2026-12-03T10:00:00.000000Z", 0.0),
            500.0,
            "wait",
            500.0,
        ),
        # a new holder with the same renewTime is a new record too
        (
            lease("third/7/aaa"),
            Observed(OTHER, "2026-12-03T10:00:00.000000Z", 0.0),
            500.0,
            "wait",
            500.0,
        ),
        # the lease's own duration counts, not this process's default
        (
            lease(OTHER, duration=60),
            Observed(OTHER, "2026-12-03T10:00:00.000000Z", 0.0),
            59.0,
            "wait",
            0.0,
        ),
        (
            lease(OTHER, duration=60),
            Observed(OTHER, "2026-12-03T10:00:00.000000Z", 0.0),
            60.0,
            "take",
            0.0,
        ),
    ],
)
def test_decide(
    read: Any, seen: Observed | None, now: float, action: str, since: float | None
) -> None:
    got, observed = decide(read, ME, seen, now)
    assert got == action
    assert (observed.since if observed else None) == since


def test_a_lease_with_no_duration_lasts_the_default() -> None:
    read = {"spec": {"holderIdentity": OTHER, "renewTime": "x"}}
    _, seen = decide(read, ME, None, 0.0)
    assert decide(read, ME, seen, LEASE_S - 0.1)[0] == "wait"
    assert decide(read, ME, seen, LEASE_S)[0] == "take"


def test_the_lease_is_named_and_owned_for_its_campaign() -> None:
    campaign = {"apiVersion": "trainbed.io/v1alpha1", "kind": "Campaign"}
    campaign["metadata"] = {"name": "fmnist-2k1", "uid": "u-1"}
    obj = lease_object(campaign, "experiments", ME)
    meta = obj["metadata"]
    assert (obj["kind"], meta["name"], meta["namespace"]) == (
        "Lease",
        "fmnist-2k1-controller",
        "experiments",
    )
    assert meta["labels"]["trainbed.io/campaign"] == "fmnist-2k1"
    assert meta["ownerReferences"][0]["uid"] == "u-1"
    assert obj["spec"]["holderIdentity"] == ME and obj["spec"]["leaseDurationSeconds"] == LEASE_S
    assert lease_name("a") != "a-records-000"  # never a records chunk's or a trial's name
