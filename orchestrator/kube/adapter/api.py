"""The one adapter that talks to the Kubernetes API. Every call goes through here.

It maps API errors to :class:`~trainbed.contract.errors.ClusterError` naming the kind and
namespace/name, chaining the original ``ApiException``, and makes creation idempotent: an object
that already exists under its deterministic name is not an error. Requests are plain JSON over
REST paths, sent by :mod:`~trainbed.orchestrator.kube.adapter.client` (the one module that
imports the Kubernetes client, and says why plain JSON).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import urllib3

from trainbed.contract.env import GROUP, PLURAL, VERSION
from trainbed.contract.errors import ClusterError, UserError
from trainbed.orchestrator.kube.adapter import client
from trainbed.orchestrator.kube.adapter.client import TIMEOUT, ApiException, _raw

MERGE_PATCH = "application/merge-patch+json"
#: Objects per page when listing (records chunks, a campaign's pods).
PAGE = 500
#: Where a pod finds its own namespace (the service-account volume).
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
CRD_MISSING = (
    "the Campaign CRD (campaigns.trainbed.io) is not installed in this cluster: "
    "kubectl apply -f charts/trainbed/crds/ (or helm install the chart)"
)

T = TypeVar("T")


def _wrap(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiException as err:
        reason = err.reason or ""
        raise ClusterError(f"{what}: {err.status} {reason}".strip()) from err


def _no_such_kind(err: ApiException) -> bool:
    """A 404 for the resource type itself (no CRD), not for one object: the API server answers
    it with a plain "404 page not found" instead of a Status naming the object."""
    if err.status != 404:
        return False
    status = client.body_json(err)
    if not isinstance(status, dict):
        return True
    return not (status.get("details") or {}).get("name")


def context_namespace(kubeconfig: str | None = None) -> str:
    """The namespace kubectl would use: in a pod its own, else the kubeconfig's current
    context's namespace, else ``default``."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and POD_NAMESPACE_FILE.exists():
        return POD_NAMESPACE_FILE.read_text().strip() or "default"
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    return client.kubeconfig_namespace(path) or "default"


def resolve_namespace(
    flag: str | None, file_namespace: str | None = None, kubeconfig: str | None = None
) -> str:
    """As kubectl: ``--namespace``, else the file's ``metadata.namespace``, else the context's.

    A file whose namespace conflicts with ``--namespace`` is the user's error."""
    if flag and file_namespace and flag != file_namespace:
        raise UserError(
            f"--namespace {flag} conflicts with the campaign file's metadata.namespace "
            f"{file_namespace}: drop one of them"
        )
    return flag or file_namespace or context_namespace(kubeconfig)


#: kind -> (API path prefix, plural): the objects trainbed reads or writes.
PATHS: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Campaign": (f"/apis/{GROUP}/{VERSION}", PLURAL),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
}
#: The Python client's keyword names -> the API's query parameters (what Watch.stream passes).
_QUERY = {
    "label_selector": "labelSelector",
    "limit": "limit",
    "_continue": "continue",
    "watch": "watch",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "container": "container",
    "propagation_policy": "propagationPolicy",
}


class KubeApi:
    """Typed-enough access to the objects trainbed manages."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.host = api_client.configuration.host.rstrip("/")

    @property
    def core(self) -> Any:
        return client.typed(self.api_client, "core")

    @property
    def batch(self) -> Any:
        return client.typed(self.api_client, "batch")

    @property
    def custom(self) -> Any:
        return client.typed(self.api_client, "custom")

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeApi:
        """In-cluster config inside a pod, else the kubeconfig (``$KUBECONFIG`` or ~/.kube)."""
        try:
            return cls(client.load(kubeconfig))
        except client.NoConfiguration as err:
            raise ClusterError(f"no cluster configuration: {err}") from err

    # --- the one request function -------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        content_type: str = "application/json",
        timeout: urllib3.Timeout = TIMEOUT,
        **query: Any,
    ) -> Any:
        """One API request; the unread urllib3 response, or ApiException on a non-2xx status."""
        params = {
            _QUERY[k]: (str(v).lower() if isinstance(v, bool) else v)
            for k, v in query.items()
            if k in _QUERY and v is not None
        }
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        return client.send(
            self.api_client, method, url, data=data, content_type=content_type, timeout=timeout
        )

    def _collection(self, kind: str, namespace: str) -> str:
        prefix, plural = PATHS[kind]
        return f"{prefix}/namespaces/{quote(namespace)}/{plural}"

    def _object(self, kind: str, namespace: str, name: str) -> str:
        return f"{self._collection(kind, namespace)}/{quote(name)}"

    # --- generic create/delete by kind ------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> bool:
        """Create ``obj``; False when it already existed (deterministic names make this a no-op)."""
        kind = obj["kind"]
        namespace = obj["metadata"].get("namespace", "default")
        name = obj["metadata"]["name"]
        assert kind in PATHS, f"trainbed never creates a {kind}"
        try:
            _raw(self.request("POST", self._collection(kind, namespace), body=obj))
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            if kind == "Campaign" and _no_such_kind(err):
                raise ClusterError(CRD_MISSING) from err
            raise ClusterError(
                f"create {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete (dependents in the background); False when it was already gone."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if kind == "Pod":
            body["gracePeriodSeconds"] = 0
        try:
            _raw(self.request("DELETE", self._object(kind, namespace, name), body=body))
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise ClusterError(
                f"delete {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    # --- campaigns -------------------------------------------------------------------------

    def get_campaign(self, namespace: str, name: str) -> dict[str, Any] | None:
        data = self.get_campaign_json(namespace, name)
        return None if data is None else json.loads(data)

    def get_campaign_json(self, namespace: str, name: str) -> bytes | None:
        """The Campaign as the API server sends it (its size is what etcd stores)."""
        try:
            return _raw(self.request("GET", self._object("Campaign", namespace, name)))
        except ApiException as err:
            if _no_such_kind(err):
                raise ClusterError(CRD_MISSING) from err
            if err.status == 404:
                return None
            raise ClusterError(
                f"get Campaign {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    def apply_campaign(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the Campaign, or update its spec when it exists."""
        namespace = obj["metadata"].get("namespace", "default")
        name = obj["metadata"]["name"]
        if self.create(obj):
            return self.get_campaign(namespace, name) or obj
        path = self._object("Campaign", namespace, name)
        return _wrap(
            f"patch Campaign {namespace}/{name}",
            lambda: json.loads(
                _raw(
                    self.request(
                        "PATCH", path, body={"spec": obj["spec"]}, content_type=MERGE_PATCH
                    )
                )
            ),
        )

    def patch_campaign_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = self._object("Campaign", namespace, name) + "/status"
        _wrap(
            f"patch Campaign {namespace}/{name} status",
            lambda: _raw(
                self.request("PATCH", path, body={"status": status}, content_type=MERGE_PATCH)
            ),
        )

    # --- reads and patches ----------------------------------------------------------------------

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object as JSON; None when it does not exist."""
        try:
            return json.loads(_raw(self.request("GET", self._object(kind, namespace, name))))
        except ApiException as err:
            if err.status == 404:
                return None
            raise ClusterError(f"get {kind} {namespace}/{name}: {err.status} {err.reason}") from err

    def list_objects(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` matching ``selector``, as JSON, listed in pages."""
        items: list[dict[str, Any]] = []
        token = None
        path = self._collection(kind, namespace)
        while True:
            data = _wrap(
                f"list {kind} in {namespace} ({selector})",
                lambda page=token: json.loads(
                    _raw(
                        self.request(
                            "GET", path, label_selector=selector, limit=PAGE, _continue=page
                        )
                    )
                ),
            )
            items += data.get("items") or []
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """A merge patch; False when the object does not exist."""
        try:
            path = self._object(kind, namespace, name)
            _raw(self.request("PATCH", path, body=body, content_type=MERGE_PATCH))
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise ClusterError(
                f"patch {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    def replace(self, obj: dict[str, Any]) -> bool:
        """PUT ``obj`` where the object is still at ``obj``'s ``metadata.resourceVersion``; False
        when it changed or went meanwhile (409 or 404: someone else wrote first)."""
        kind, meta = obj["kind"], obj["metadata"]
        namespace, name = meta.get("namespace", "default"), meta["name"]
        assert meta.get("resourceVersion"), "a replace without resourceVersion is not conditional"
        try:
            _raw(self.request("PUT", self._object(kind, namespace, name), body=obj))
            return True
        except ApiException as err:
            if err.status in (404, 409):
                return False
            raise ClusterError(
                f"replace {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    # --- lists and watches (used by the informers) ------------------------------------------

    def lister(self, kind: str, namespace: str) -> Callable[..., Any]:
        """The raw list function of a kind: it takes the client's keyword names (``watch=True``
        for a watch, as :class:`kubernetes.watch.Watch` calls it) and returns the unread
        response."""
        path = self._collection(kind, namespace)

        def list_kind(**kwargs: Any) -> Any:
            timeout = TIMEOUT
            if kwargs.get("watch"):
                timeout = urllib3.Timeout(
                    connect=10, read=float(kwargs.get("timeout_seconds") or 300) + 30
                )
            return self.request("GET", path, timeout=timeout, **kwargs)

        return list_kind

    def pod_phase(self, namespace: str, name: str) -> str | None:
        pod = self.get_object("Pod", namespace, name)
        return None if pod is None else (pod.get("status") or {}).get("phase")

    def pod_log(self, namespace: str, name: str, container: str = "worker") -> str:
        path = self._object("Pod", namespace, name) + "/log"
        return _wrap(
            f"logs of Pod {namespace}/{name}",
            lambda: _raw(self.request("GET", path, container=container)).decode(errors="replace"),
        )

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.list_objects("Pod", namespace, selector)

    def exec_stream(self, namespace: str, pod: str, command: list[str]) -> Iterator[bytes]:
        """Run a command in a pod and yield its stdout bytes (the API's exec stream)."""
        resp = _wrap(
            f"exec in Pod {namespace}/{pod}",
            lambda: client.exec_stream(self.api_client, namespace, pod, command),
        )
        yield from resp
