"""Permanent and temporary API errors (kopf's split): the pure classification, the one line
each error prints, and the adapter's retries against a real HTTP server on localhost that
answers what a troubled API server answers."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from kubernetes import client as k8s

from trainbed.contract.errors import (
    ClusterError,
    PermanentClusterError,
    api_error,
    api_error_permanent,
    api_error_retryable,
)
from trainbed.orchestrator.kube.adapter.api import KubeApi, resource_name
from trainbed.orchestrator.kube.adapter.api_errors import CRD_MISSING, api_error_message
from trainbed.orchestrator.kube.objects.campaign_status import Condition, with_stalled


@pytest.mark.parametrize(
    ("status", "kind_missing", "permanent", "retryable"),
    [
        (None, False, False, True),  # no answer: a timeout, a reset connection
        (400, False, True, False),
        (401, False, True, False),
        (403, False, True, False),
        (404, False, False, False),  # one object is absent: the caller decides
        (404, True, True, False),  # the resource type is absent: no CRD
        (405, False, True, False),
        (408, False, False, True),
        (409, False, False, False),  # exists, or changed meanwhile: the caller decides
        (410, False, False, False),  # a watch's version expired: relist
        (413, False, True, False),
        (422, False, True, False),
        (425, False, False, True),
        (429, False, False, True),
        (500, False, False, True),
        (502, False, False, True),
        (503, False, False, True),
        (504, False, False, True),
    ],
)
def test_classification(
    status: int | None, kind_missing: bool, permanent: bool, retryable: bool
) -> None:
    assert api_error_permanent(status, kind_missing=kind_missing) is permanent
    assert api_error_retryable(status) is retryable
    assert not (permanent and retryable)
    err = api_error("m", status, kind_missing=kind_missing)
    assert isinstance(err, PermanentClusterError) is permanent
    assert err.permanent is permanent and err.status == status
    assert err.exit_code == (2 if permanent else 1)


@pytest.mark.parametrize(
    ("kind", "sub", "expected"),
    [
        ("Job", "", "jobs.batch"),
        ("ConfigMap", "", "configmaps"),
        ("Campaign", "status", "campaigns.trainbed.io/status"),
        ("Lease", "", "leases.coordination.k8s.io"),
        ("Pod", "log", "pods/log"),
    ],
)
def test_resource_names_are_rbacs(kind: str, sub: str, expected: str) -> None:
    assert resource_name(kind, sub) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("create", "jobs.batch", "tb", "c-0001", 403, "Forbidden", 'cannot create "jobs"'),
            "create jobs.batch tb/c-0001: 403 Forbidden (RBAC: this account needs 'create' on "
            'jobs.batch in namespace tb): cannot create "jobs"',
        ),
        (
            ("list", "pods", "tb", "", 401, "Unauthorized", ""),
            "list pods in namespace tb: 401 Unauthorized (the API server refused the "
            "credentials: check the kubeconfig or the token)",
        ),
        (
            ("patch", "configmaps", "tb", "r-0", 422, "Unprocessable Entity", "data: Too long\n"),
            "patch configmaps tb/r-0: 422 Unprocessable Entity: data: Too long",
        ),
        (
            ("get", "leases.coordination.k8s.io", "tb", "c", None, "ReadTimeoutError: x", ""),
            "get leases.coordination.k8s.io tb/c: no answer from the API server "
            "(ReadTimeoutError: x)",
        ),
    ],
)
def test_one_line_names_verb_resource_and_namespace(args: tuple, expected: str) -> None:
    line = api_error_message(*args)
    assert line == expected
    assert "\n" not in line


def test_stalled_condition_replaces_an_older_one() -> None:
    kept = Condition("Complete", "False", "TrialsInProgress", "0/4", "t0")
    old = Condition("Stalled", "True", "Unauthorized", "before", "t0")
    out = with_stalled((kept, old), 403, "create jobs.batch tb/c: 403 Forbidden", "t1")
    assert out[0] == kept
    assert [c.type for c in out] == ["Complete", "Stalled"]
    assert out[1] == Condition("Stalled", "True", "Forbidden", out[1].message, "t1")
    assert out[1].message.startswith("create jobs.batch")
    assert with_stalled((), 500, "x", "t")[0].reason == "ApiError"


# --- the adapter against a real HTTP server ----------------------------------------------------


class _Server:
    """Answers each request with the next scripted (status, headers, body); 200 {} after."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], dict]] = []
        self.seen: list[tuple[str, str, float]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.seen.append((self.command, self.path, time.monotonic()))
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                status, headers, body = owner.script.pop(0) if owner.script else (200, {}, {})
                data = json.dumps(body).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[_Server]:
    one = _Server()
    yield one
    one.httpd.shutdown()
    one.httpd.server_close()


def _api(url: str, backoff: tuple[float, ...] = (0.05, 0.1, 0.2)) -> KubeApi:
    return KubeApi(k8s.ApiClient(k8s.Configuration(host=url)), backoff=backoff)


def _status(code: int, reason: str, message: str, name: str = "c") -> dict:
    return {"kind": "Status", "code": code, "reason": reason, "message": message,
            "details": {"name": name}}  # fmt: skip


JOB = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "c-1", "namespace": "tb"}}


def test_temporary_errors_are_retried_with_growing_pauses(server: _Server) -> None:
    server.script = [
        (503, {}, _status(503, "ServiceUnavailable", "etcd leader changed")),
        (500, {}, _status(500, "InternalError", "oops")),
        (201, {}, {}),
    ]
    assert _api(server.url).create(JOB) is True
    times = [t for _, _, t in server.seen]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.05 and times[2] - times[1] >= 0.1


def test_429_waits_as_long_as_retry_after_says(server: _Server) -> None:
    server.script = [(429, {"Retry-After": "1"}, _status(429, "TooManyRequests", "slow down"))]
    assert _api(server.url).get_object("Job", "tb", "c-1") == {}
    (_, _, first), (_, _, second) = server.seen
    assert second - first >= 1.0


def test_temporary_errors_are_raised_once_the_backoff_is_spent(server: _Server) -> None:
    server.script = [(503, {}, _status(503, "ServiceUnavailable", "x"))] * 4
    with pytest.raises(ClusterError) as info:
        _api(server.url).create(JOB)
    assert not info.value.permanent and info.value.status == 503
    assert len(server.seen) == 4  # the first attempt and three retries
    assert str(info.value).startswith("create jobs.batch tb/c-1: 503 Service Unavailable")


def test_forbidden_is_permanent_and_never_retried(server: _Server) -> None:
    why = 'jobs.batch is forbidden: User "system:serviceaccount:tb:ctl" cannot create resource'
    server.script = [(403, {}, _status(403, "Forbidden", why))]
    with pytest.raises(PermanentClusterError) as info:
        _api(server.url).create(JOB)
    assert len(server.seen) == 1
    assert info.value.status == 403 and info.value.exit_code == 2
    assert str(info.value).startswith(
        "create jobs.batch tb/c-1: 403 Forbidden (RBAC: this account needs 'create' on jobs.batch"
    )
    assert why in str(info.value)


def test_a_missing_crd_is_permanent_and_says_how_to_install_it(server: _Server) -> None:
    server.script = [(404, {"Content-Type": "text/plain"}, "404 page not found")]
    with pytest.raises(PermanentClusterError) as info:
        _api(server.url).get_campaign("tb", "c")
    assert str(info.value) == CRD_MISSING


def test_a_missing_object_is_an_answer_not_an_error(server: _Server) -> None:
    server.script = [(404, {}, _status(404, "NotFound", 'jobs.batch "c-1" not found', "c-1"))]
    assert _api(server.url).get_object("Job", "tb", "c-1") is None
    assert len(server.seen) == 1


def test_no_answer_is_temporary(server: _Server) -> None:
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()  # nothing listens there now: connection refused
    began = time.monotonic()
    with pytest.raises(ClusterError) as info:
        _api(url, backoff=(0.05, 0.05)).get_object("Job", "tb", "c-1")
    assert not info.value.permanent and info.value.status is None
    assert "get jobs.batch tb/c-1: no answer from the API server" in str(info.value)
    assert time.monotonic() - began >= 0.1  # it was retried after each pause


def test_status_names_a_stalled_controller() -> None:
    from trainbed.orchestrator.kube.verbs.status_command import diagnosis

    why = "create jobs.batch tb/c-1: 403 Forbidden"
    conditions = with_stalled((), 403, why, "2026-01-01T00:00:00Z")
    obj = {
        "metadata": {"name": "c", "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 1},
        "status": {"phase": "Running", "observedGeneration": 1,
                   "conditions": [c.for_storage() for c in conditions]},
    }  # fmt: skip
    assert diagnosis(obj, now=0.0) == (
        f"the controller stopped on an API error no retry fixes: {why}"
    )
    obj["status"]["conditions"] = []
    assert diagnosis(obj, now=0.0) == ""
