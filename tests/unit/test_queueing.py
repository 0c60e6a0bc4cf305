"""Why Kueue holds a trial, from Workload conditions as Kueue v0.17 writes them; and the
Campaign's Queued condition over many trials. Table-driven, pure."""

from __future__ import annotations

from typing import Any

import pytest

from trainbed.orchestrator.kube.control.controller import with_default_queue
from trainbed.orchestrator.kube.objects.campaign_status import Blocker
from trainbed.orchestrator.kube.objects.queueing import (
    BLOCKING,
    Span,
    admission_span,
    admitted_beside,
    queue_reason,
    queued_condition,
)


def workload(*conditions: tuple[str, str, str, str]) -> dict[str, Any]:
    """(type, status, reason, message) each."""
    return {
        "metadata": {"name": "job-c-t1-abcde", "job": "c-t1"},
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions
            ]
        },
    }


NO_QUEUE = "LocalQueue team-a doesn't exist"
NO_CQ = "ClusterQueue cq doesn't exist"
QUOTA = (
    "couldn't assign flavors to pod set main: insufficient unused quota for cpu in flavor "
    "default, 1 more needed"
)
CASES = [
    ("no Workload yet", None, "Pending", "no Workload"),
    ("not looked at yet", workload(), "Pending", "not reserved"),
    (
        "no such LocalQueue",
        workload(("QuotaReserved", "False", "Inadmissible", NO_QUEUE)),
        "QueueMissing",
        "team-a",
    ),
    (
        "no such ClusterQueue",
        workload(("QuotaReserved", "False", "Inadmissible", NO_CQ)),
        "QueueMissing",
        "cq",
    ),
    (
        "inactive ClusterQueue",
        workload(("QuotaReserved", "False", "Inadmissible", "ClusterQueue cq is inactive")),
        "Inadmissible",
        "inactive",
    ),
    (
        "quota in use",
        workload(("QuotaReserved", "False", "Pending", QUOTA)),
        "QuotaExhausted",
        "1 more needed",
    ),
    (
        "preempted",
        workload(
            ("QuotaReserved", "False", "Pending", QUOTA),
            ("Evicted", "True", "Preempted", "Preempted to accommodate a workload (UID: x)"),
        ),
        "Evicted",
        "Preempted: Preempted to accommodate",
    ),
    (
        "admitted, Job not yet resumed",
        workload(("QuotaReserved", "True", "QuotaReserved", ""), ("Admitted", "True", "", "")),
        "Admitted",
        "admitted",
    ),
]


@pytest.mark.parametrize(("case", "obj", "reason", "said"), CASES, ids=[c[0] for c in CASES])
def test_queue_reason(case: str, obj: dict | None, reason: str, said: str) -> None:
    held = queue_reason(obj)
    assert held.reason == reason
    assert said in held.message


def test_queued_condition_names_the_commonest_and_puts_blocking_first() -> None:
    assert queued_condition([]).status == "False"
    quota = Blocker("QuotaExhausted", QUOTA)
    cond = queued_condition([("t2", quota), ("t1", quota)])
    assert (cond.status, cond.reason) == ("True", "QuotaExhausted")
    assert cond.message == f"2 trials, e.g. t1: {QUOTA}"
    missing = Blocker("QueueMissing", NO_QUEUE)
    cond = queued_condition([("t1", quota), ("t2", quota), ("t3", missing)])
    assert cond.reason == "QueueMissing" and NO_QUEUE in cond.message
    assert "QueueMissing" in BLOCKING and "QuotaExhausted" not in BLOCKING


@pytest.mark.parametrize(
    ("kubernetes", "default", "queue"),
    [
        (None, None, None),
        (None, "team-a", "team-a"),
        ({"image": "x"}, "team-a", "team-a"),
        ({"queue": "own"}, "team-a", "own"),  # the campaign's own queue stands
        ({"queue": "own"}, None, "own"),
    ],
)
def test_the_controllers_default_queue(
    kubernetes: dict | None, default: str | None, queue: str | None
) -> None:
    data: dict[str, Any] = {"spec": {"factors": []}}
    if kubernetes is not None:
        data["spec"]["kubernetes"] = kubernetes
    out = with_default_queue(data, default)
    assert (out["spec"].get("kubernetes") or {}).get("queue") == queue
    if kubernetes is not None:
        assert (
            out["spec"]["kubernetes"].items()
            >= {k: v for k, v in kubernetes.items() if k != "queue"}.items()
        )
    assert data["spec"].get("kubernetes") == kubernetes, "the Campaign's own data is not changed"


def _at(*conditions: tuple[str, str, str]) -> dict[str, Any]:
    """A Workload with (type, status, lastTransitionTime) conditions."""
    found = [{"type": t, "status": s, "lastTransitionTime": at} for t, s, at in conditions]
    return {"status": {"conditions": found}}


T1, T2, T3 = "2026-12-05T10:00:01Z", "2026-12-05T10:00:09Z", "2026-12-05T10:00:20Z"


@pytest.mark.parametrize(
    ("case", "obj", "before", "span"),
    [
        ("never admitted", _at(("QuotaReserved", "False", T1)), None, None),
        ("admitted, holds", _at(("Admitted", "True", T1)), None, (T1, None)),
        (
            "admitted, finished",
            _at(("Admitted", "True", T1), ("Finished", "True", T2)),
            None,
            (T1, T2),
        ),
        ("evicted after an admission", _at(("Admitted", "False", T2)), (T1, None), (T1, T2)),
        ("evicted, never seen admitted", _at(("Admitted", "False", T2)), None, None),
        ("admitted again", _at(("Admitted", "True", T3)), (T1, T2), (T3, None)),
    ],
)
def test_admission_span(case: str, obj: dict, before: Span | None, span: Span | None) -> None:
    assert admission_span(obj, before) == span, case


@pytest.mark.parametrize(
    ("case", "since", "until", "beside"),
    [
        ("runs across both", "2026-12-05T10:00:00Z", T3, ["a", "holds"]),
        ("after a ended, same second counts", T2, T3, ["a", "holds"]),
        ("before either", "2026-12-05T09:00:00Z", "2026-12-05T09:59:00Z", []),
        ("still running, after a", "2026-12-05T10:00:10.5+00:00", None, ["holds"]),
    ],
)
def test_admitted_beside(case: str, since: str, until: str | None, beside: list[str]) -> None:
    spans: dict[str, Span] = {"a": (T1, T2), "holds": (T2, None)}
    assert admitted_beside(spans, since, until) == beside, case
