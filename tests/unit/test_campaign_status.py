"""The Campaign's bounded status value, its records chunks and its "says why" blockers: pure,
table-driven over API-shaped dicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from trainbed.contract.errors import UserError
from trainbed.orchestrator.kube.adapter import namespaces
from trainbed.orchestrator.kube.control.record_store import (
    CHUNK,
    REASON_CHARS,
    chunk_name,
    chunk_of,
    decode,
    encode,
    records_configmap,
)
from trainbed.orchestrator.kube.objects.blockers import (
    job_blocker,
    pod_blocker,
    pvc_blocker,
    summarize,
)
from trainbed.orchestrator.kube.objects.campaign_status import (
    FAILURES,
    IN_FLIGHT,
    Blocker,
    CampaignStatus,
    Condition,
    Failure,
    InFlight,
    progress_conditions,
    window,
    with_conditions,
)

ROOT = Path(__file__).resolve().parents[2]
T0, T1 = "2026-01-01T00:00:00Z", "2026-01-01T00:00:05Z"


def big_status(trials: int = 10_000, concurrency: int = 5_000) -> CampaignStatus:
    flight = [InFlight(f"t{i:010x}", "Running", T0, "x" * 500) for i in range(concurrency)]
    failures = [Failure(f"t{i:010x}", "failed", "y" * 5_000, T1) for i in range(FAILURES)]
    return CampaignStatus(
        phase="Running",
        observed_generation=3,
        total=trials,
        done=trials - concurrency,
        failed=FAILURES * 10,
        running=concurrency,
        phases=(("Running", concurrency),),
        started_at=T0,
        in_flight=window(flight),
        failures=tuple(failures),
        conditions=tuple(
            progress_conditions(
                done=trials - concurrency,
                total=trials,
                failed=10,
                blockers=[Blocker("Unschedulable", "z" * 5_000)],
            )
        ),
        records="trainbed.io/campaign=c,app.kubernetes.io/component=records",
    )


def test_status_round_trips_through_storage() -> None:
    status = big_status(100, 20)
    stored = json.loads(json.dumps(status.for_storage()))
    assert CampaignStatus.from_storage(stored) == status
    assert stored["pending"] == status.pending == 0
    assert stored["succeeded"] == status.done - status.failed
    assert stored["blocked"] == "Unschedulable"


def test_status_is_bounded_whatever_the_campaign_size() -> None:
    """10,000 trials, 5,000 in flight, long reasons: the stored status stays far below 64 KiB."""
    stored = big_status().for_storage()
    assert len(stored["inFlight"]) == IN_FLIGHT and len(stored["failures"]) == FAILURES
    assert len(json.dumps(stored, separators=(",", ":"))) < 40 * 1024


def test_equal_values_mean_no_write() -> None:
    assert big_status(100, 20) == big_status(100, 20)
    assert big_status(100, 20) != big_status(100, 21)


@pytest.mark.parametrize(
    ("old_status", "new_status", "since"),
    [
        ("False", "False", T0),  # unchanged: its transition time stays
        ("False", "True", T1),  # flipped: now
        (None, "True", T1),  # new condition: now
    ],
)
def test_condition_transition_times(old_status: str | None, new_status: str, since: str) -> None:
    previous = () if old_status is None else (Condition("Blocked", old_status, since=T0),)
    (cond,) = with_conditions(previous, [Condition("Blocked", new_status, "R", "m")], T1)
    assert cond.since == since


def test_progress_conditions() -> None:
    done = progress_conditions(done=4, total=4, failed=1, blockers=[Blocker("X", "y")])
    assert [(c.type, c.status) for c in done] == [("Complete", "True"), ("Blocked", "False")]
    stuck = progress_conditions(
        done=1, total=4, failed=0, blockers=[Blocker("ImagePullBackOff", "image 'x'")]
    )
    assert [(c.type, c.status, c.reason) for c in stuck][1] == (
        "Blocked",
        "True",
        "ImagePullBackOff",
    )


def test_window_keeps_the_oldest() -> None:
    entries = [InFlight(f"t{i}", "Running", f"2026-01-01T00:00:{i:02d}Z") for i in range(60)]
    kept = window(reversed(entries), limit=3)
    assert [e.trial for e in kept] == ["t0", "t1", "t2"]


# --- records chunks ---------------------------------------------------------------------------


def test_chunks_by_run_order() -> None:
    ids = [f"t{i:010x}" for i in range(CHUNK * 2 + 1)]
    chunks = chunk_of(ids)
    assert chunks[ids[0]] == chunks[ids[CHUNK - 1]] == 0
    assert chunks[ids[CHUNK]] == 1 and chunks[ids[-1]] == 2
    assert chunk_name("fmnist", 2) == "fmnist-records-002"


def test_records_encode_compactly_and_decode_as_a_union() -> None:
    entry = {"status": "failed", "reason": "r" * 5_000, "scheduled": None, "phase": "Failed"}
    data = encode({"t1": entry})
    stored = json.loads(data["t1"])
    assert "scheduled" not in stored and len(stored["reason"]) == REASON_CHARS
    union = decode([{"data": data}, {"data": encode({"t2": {"status": "succeeded"}})}, {}])
    assert set(union) == {"t1", "t2"}
    cm = records_configmap("c", 0, data, namespace="ns", owner=None)
    labels = cm["metadata"]["labels"]
    assert labels["trainbed.io/campaign"] == "c"
    assert labels["app.kubernetes.io/component"] == "records"
    # a full chunk of worst-case records stays far below a ConfigMap's 1 MiB
    worst = encode({f"t{i:010x}": {**entry, "job": "c" * 52} for i in range(CHUNK)})
    assert sum(len(k) + len(v) for k, v in worst.items()) < 256 * 1024


# --- blockers --------------------------------------------------------------------------------


def pod(
    *, waiting: str | None = None, unschedulable: str | None = None, phase: str = "Pending"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "conditions": []}
    if waiting:
        status["containerStatuses"] = [
            {
                "image": "trainbed:missing",
                "state": {"waiting": {"reason": waiting, "message": f"{waiting} msg"}},
            }
        ]
    if unschedulable:
        status["conditions"].append(
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": unschedulable,
            }
        )
    return {"metadata": {"name": "p"}, "status": status}


@pytest.mark.parametrize(
    ("obj", "reason", "text"),
    [
        (pod(waiting="ImagePullBackOff"), "ImagePullBackOff", "trainbed:missing"),
        (pod(waiting="ErrImagePull"), "ErrImagePull", "ErrImagePull msg"),
        (pod(waiting="ContainerCreating"), None, None),
        (
            pod(unschedulable="0/4 nodes are available: 4 Insufficient cpu."),
            "Unschedulable",
            "Insufficient cpu",
        ),
        (pod(phase="Running"), None, None),
    ],
)
def test_pod_blocker(obj: dict[str, Any], reason: str | None, text: str | None) -> None:
    found = pod_blocker(obj)
    if reason is None:
        assert found is None
    else:
        assert found is not None and found.reason == reason and text in found.message


def test_job_without_pods_is_reported_after_a_while() -> None:
    job = {"metadata": {"name": "c-t1", "creationTimestamp": T0}, "status": {}}
    start = 1767225600.0  # T0
    younger = T1  # a Job created after this one already has pods
    assert job_blocker(job, [], start + 5, newest_with_pods=younger) is None
    assert job_blocker(job, [], start + 30, newest_with_pods=younger) is None
    # no younger Job has pods: the Job controller is behind, not refusing
    assert job_blocker(job, [], start + 600, newest_with_pods="") is None
    assert job_blocker(job, [], start + 600, newest_with_pods=T0) is None
    late = job_blocker(job, [], start + 90, newest_with_pods=younger)
    assert late is not None and late.reason == "NoPods" and "c-t1" in late.message
    assert job_blocker(job, [pod()], start + 90, newest_with_pods=younger) is None


@pytest.mark.parametrize(
    ("pvc", "reason"),
    [
        (None, "ResultsVolumeMissing"),
        ({"spec": {}, "status": {"phase": "Pending"}}, "ResultsVolumePending"),
        ({"spec": {"storageClassName": "fast"}, "status": {"phase": "Pending"}}, None),
        ({"spec": {"volumeName": "pv"}, "status": {"phase": "Pending"}}, None),
        ({"spec": {}, "status": {"phase": "Bound"}}, None),
    ],
)
def test_pvc_blocker(pvc: dict[str, Any] | None, reason: str | None) -> None:
    found = pvc_blocker(pvc, "trainbed-results", "ns")
    assert (found.reason if found else None) == reason
    if found:
        assert "ns/trainbed-results" in found.message


def test_summarize_orders_by_cause_and_counts_trials() -> None:
    found = [
        ("t2", Blocker("Unschedulable", "no node")),
        ("t1", Blocker("Unschedulable", "no node")),
        ("", Blocker("ResultsVolumePending", "PVC pending")),
    ]
    first, second = summarize(found)
    assert first.reason == "ResultsVolumePending" and first.message == "PVC pending"
    assert second.message == "2 trials, e.g. t1: no node"


# --- namespaces, the kubectl way ------------------------------------------------------------


def kubeconfig(tmp_path: Any, namespace: str | None) -> str:
    context: dict[str, Any] = {"cluster": "c", "user": "u"}
    if namespace:
        context["namespace"] = namespace
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {}}],
                "contexts": [{"name": "ctx", "context": context}],
                "current-context": "ctx",
            }
        )
    )
    return str(path)


@pytest.mark.parametrize(
    ("flag", "file_ns", "context_ns", "expected"),
    [
        ("a", None, "ctx", "a"),
        (None, "b", "ctx", "b"),
        ("b", "b", "ctx", "b"),
        (None, None, "ctx", "ctx"),
        (None, None, None, "default"),
    ],
)
def test_namespace_resolution(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    file_ns: str | None,
    context_ns: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    config = kubeconfig(tmp_path, context_ns)
    assert namespaces.resolve_namespace(flag, file_ns, config) == expected


def test_conflicting_namespaces_are_a_user_error(tmp_path: Any) -> None:
    with pytest.raises(UserError, match="--namespace a conflicts .* metadata.namespace b"):
        namespaces.resolve_namespace("a", "b", kubeconfig(tmp_path, None))


def test_cli_namespace_conflict_is_one_line_and_exit_2(tmp_path: Any) -> None:
    import yaml
    from typer.testing import CliRunner

    from trainbed.orchestrator.cli import app

    data = yaml.safe_load((ROOT / "experiments" / "fmnist-2k1.yaml").read_text())
    data["metadata"]["namespace"] = "b"
    file = tmp_path / "c.yaml"
    file.write_text(yaml.safe_dump(data))
    for verb in (["submit", str(file)], ["run", str(file), "--backend", "kubernetes"]):
        result = CliRunner().invoke(app, [*verb, "-n", "a"])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "--namespace a conflicts" in lines[0], result.output
