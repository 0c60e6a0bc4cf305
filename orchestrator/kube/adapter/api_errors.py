"""What an API error means: one line naming the verb, the resource and the namespace, and
whether it is permanent (stop and say so) or temporary (send again after a pause).

The split is kopf's, and the classification is :func:`trainbed.contract.errors.api_error` (pure,
table-tested): 401, 403, 422 and the other 4xx that no retry fixes are permanent, and so is a 404
for the resource type itself (the Campaign CRD is not installed); a 404, 409 or 410 about one
object is the caller's to decide on; 408, 425, 429, every 5xx and no answer at all (a timeout, a
reset connection) are temporary, and :class:`~trainbed.orchestrator.kube.adapter.api.KubeApi`
retries them with :data:`BACKOFF_S` before it gives up for this call.
"""

from __future__ import annotations

from trainbed.contract.errors import ClusterError, PermanentClusterError, api_error
from trainbed.orchestrator.kube.adapter.client import ApiException, body_json

CRD_MISSING = (
    "the Campaign CRD (campaigns.trainbed.io) is not installed in this cluster: "
    "kubectl apply -f charts/trainbed/crds/ (or helm install the chart)"
)
#: Pauses before each new attempt of a request that got a temporary error (kopf's are
#: similar): about 7.5 s in all, then the error goes to the caller, whose own loop retries later.
BACKOFF_S = (0.5, 1.0, 2.0, 4.0)
#: A 429's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER_S = 10.0


def kind_missing(err: ApiException) -> bool:
    """A 404 for the resource type itself (no CRD), not for one object: the API server answers
    it with a plain "404 page not found" instead of a Status naming the object."""
    if err.status != 404:
        return False
    status = body_json(err)
    if not isinstance(status, dict):
        return True
    return not (status.get("details") or {}).get("name")


def server_message(err: ApiException) -> str:
    """The Status message the API server sent with the error ("... cannot create resource
    "jobs" in API group "batch" ..."), or ""."""
    status = body_json(err)
    return str(status.get("message") or "") if isinstance(status, dict) else ""


def api_error_message(
    verb: str,
    resource: str,
    namespace: str,
    name: str,
    status: int | None,
    reason: str,
    detail: str = "",
) -> str:
    """One line: ``<verb> <resource> <namespace>/<name>: <status> <reason> (<what to do>):
    <the server's message>``. Pure."""
    target = f"{resource} {namespace}/{name}" if name else f"{resource} in namespace {namespace}"
    if status is None:
        text = f"no answer from the API server ({reason})" if reason else "no answer"
    else:
        text = f"{status} {reason}".strip()
    if status == 401:
        text += " (the API server refused the credentials: check the kubeconfig or the token)"
    elif status == 403:
        text += f" (RBAC: this account needs {verb!r} on {resource} in namespace {namespace})"
    line = f"{verb} {target}: {text}"
    if detail:
        line += f": {detail}"
    return " ".join(line.split())


def translate(
    verb: str, resource: str, namespace: str, name: str, err: ApiException
) -> ClusterError:
    """The trainbed error for an ApiException: permanent or temporary, with its one line."""
    missing = kind_missing(err)
    if missing and resource.startswith("campaigns."):
        return PermanentClusterError(CRD_MISSING, status=404)
    message = api_error_message(
        verb, resource, namespace, name, err.status, err.reason or "", server_message(err)
    )
    return api_error(message, err.status, kind_missing=missing)


def retry_after(err: ApiException, pause: float) -> float:
    """The pause before the next attempt: the server's Retry-After (429, 503) when it sent one
    within reason, else ``pause``."""
    headers = err.headers or {}
    try:
        asked = float(headers.get("Retry-After", ""))
    except (TypeError, ValueError):
        return pause
    return min(max(asked, pause), MAX_RETRY_AFTER_S)
