"""The one adapter that talks to the Kubernetes API. Every call goes through here.

It maps API errors to :class:`~trainbed.contract.errors.ClusterError` in one line naming the verb,
the resource and its namespace/name, permanent or temporary
(:mod:`~trainbed.orchestrator.kube.adapter.api_errors`), chaining the original ``ApiException``; it
sends a request again after a temporary error, with backoff; and it makes creation idempotent:
an object that already exists under its deterministic name is not an error. Requests are plain
JSON over REST paths, sent by :mod:`~trainbed.orchestrator.kube.adapter.client` (the one module
that imports the Kubernetes client, and says why plain JSON).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import urllib3

from trainbed.contract import kueue
from trainbed.contract.env import GROUP, PLURAL, VERSION
from trainbed.contract.errors import ClusterError, api_error_retryable
from trainbed.orchestrator.kube.adapter import client
from trainbed.orchestrator.kube.adapter.api_errors import BACKOFF_S, retry_after, translate
from trainbed.orchestrator.kube.adapter.client import TIMEOUT, ApiException, _raw

MERGE_PATCH = "application/merge-patch+json"
#: Objects per page when listing (records chunks, a campaign's pods).
PAGE = 500

T = TypeVar("T")

#: kind -> (API path prefix, plural): the objects trainbed reads or writes.
PATHS: dict[str, tuple[str, str]] = {
    "Job": ("/apis/batch/v1", "jobs"),
    "Service": ("/api/v1", "services"),
    "ConfigMap": ("/api/v1", "configmaps"),
    "Pod": ("/api/v1", "pods"),
    "PersistentVolumeClaim": ("/api/v1", "persistentvolumeclaims"),
    "Campaign": (f"/apis/{GROUP}/{VERSION}", PLURAL),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases"),
    "Workload": (f"/apis/{kueue.GROUP}/{kueue.VERSION}", kueue.WORKLOADS),  # read only
}
#: The Python client's keyword names -> the API's query parameters (what Watch.stream passes).
_QUERY = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "include_object": "includeObject",
    "limit": "limit",
    "_continue": "continue",
    "watch": "watch",
    "resource_version": "resourceVersion",
    "timeout_seconds": "timeoutSeconds",
    "allow_watch_bookmarks": "allowWatchBookmarks",
    "container": "container",
    "propagation_policy": "propagationPolicy",
}


def resource_name(kind: str, subresource: str = "") -> str:
    """The resource as RBAC names it: ``jobs.batch``, ``configmaps``,
    ``campaigns.trainbed.io/status``."""
    prefix, plural = PATHS[kind]
    group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
    return (f"{plural}.{group}" if group else plural) + (f"/{subresource}" if subresource else "")


def _error(
    verb: str, kind: str, namespace: str, name: str, err: ApiException, sub: str = ""
) -> ClusterError:
    return translate(verb, resource_name(kind, sub), namespace, name, err)


def _wrap(
    verb: str, kind: str, namespace: str, name: str, call: Callable[[], T], sub: str = ""
) -> T:
    """``call()``, its ApiException turned into trainbed's error for ``verb`` on the object."""
    try:
        return call()
    except ApiException as err:
        raise _error(verb, kind, namespace, name, err, sub) from err


class KubeApi:
    """Typed-enough access to the objects trainbed manages."""

    def __init__(self, api_client: client.ApiClient, backoff: tuple[float, ...] = BACKOFF_S):
        self.api_client = api_client
        self.host = api_client.configuration.host.rstrip("/")
        #: pauses before each new attempt after a temporary error (none: one attempt)
        self.backoff = backoff

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
        accept: str = "application/json",
        **query: Any,
    ) -> Any:
        """One API request; the unread urllib3 response, or ApiException on a non-2xx status or
        no answer. A temporary error (no answer, 408, 429, 5xx) is retried after each pause of
        :attr:`backoff` (a 429's Retry-After where it is longer), then raised. Every trainbed
        write is idempotent under deterministic names, so sending one twice is safe."""
        params = {
            _QUERY[k]: (str(v).lower() if isinstance(v, bool) else v)
            for k, v in query.items()
            if k in _QUERY and v is not None
        }
        url = self.host + path + (f"?{urlencode(params)}" if params else "")
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        for pause in (*self.backoff, None):
            try:
                return client.send(
                    self.api_client,
                    method,
                    url,
                    data=data,
                    content_type=content_type,
                    timeout=timeout,
                    accept=accept,
                )
            except ApiException as err:
                if pause is None or not api_error_retryable(err.status):
                    raise
                time.sleep(retry_after(err, pause))
        raise AssertionError("unreachable: the last attempt returns or raises")

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
            raise _error("create", kind, namespace, name, err) from err

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete (dependents in the background); False when it was already gone."""
        body: dict[str, Any] = {"propagationPolicy": "Background"}
        if kind == "Pod":
            body["gracePeriodSeconds"] = 0
        try:
            _raw(self.request("DELETE", self._object(kind, namespace, name), body=body))
            return True
        except ApiException as err:
            if err.status == 404 and not _error("delete", kind, namespace, name, err).permanent:
                return False
            raise _error("delete", kind, namespace, name, err) from err

    # --- campaigns -------------------------------------------------------------------------

    def get_campaign(self, namespace: str, name: str) -> dict[str, Any] | None:
        data = self.get_campaign_json(namespace, name)
        return None if data is None else json.loads(data)

    def get_campaign_json(self, namespace: str, name: str) -> bytes | None:
        """The Campaign as the API server sends it (its size is what etcd stores)."""
        try:
            return _raw(self.request("GET", self._object("Campaign", namespace, name)))
        except ApiException as err:
            error = _error("get", "Campaign", namespace, name, err)
            if err.status == 404 and not error.permanent:
                return None
            raise error from err

    def apply_campaign(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Create the Campaign, or update its spec when it exists."""
        namespace = obj["metadata"].get("namespace", "default")
        name = obj["metadata"]["name"]
        if self.create(obj):
            return self.get_campaign(namespace, name) or obj
        path = self._object("Campaign", namespace, name)
        body = {"spec": obj["spec"]}
        return _wrap(
            "patch",
            "Campaign",
            namespace,
            name,
            lambda: json.loads(
                _raw(self.request("PATCH", path, body=body, content_type=MERGE_PATCH))
            ),
        )

    def patch_campaign_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        path = self._object("Campaign", namespace, name) + "/status"
        body = {"status": status}
        _wrap(
            "patch",
            "Campaign",
            namespace,
            name,
            lambda: _raw(self.request("PATCH", path, body=body, content_type=MERGE_PATCH)),
            sub="status",
        )

    # --- reads and patches ----------------------------------------------------------------------

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object as JSON; None when it does not exist."""
        try:
            return json.loads(_raw(self.request("GET", self._object(kind, namespace, name))))
        except ApiException as err:
            error = _error("get", kind, namespace, name, err)
            if err.status == 404 and not error.permanent:
                return None
            raise error from err

    def list_objects(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` matching ``selector``, as JSON, listed in pages."""
        items: list[dict[str, Any]] = []
        token = None
        path = self._collection(kind, namespace)
        while True:
            data = _wrap(
                "list",
                kind,
                namespace,
                "",
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
            error = _error("patch", kind, namespace, name, err)
            if err.status == 404 and not error.permanent:
                return False
            raise error from err

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
            error = _error("update", kind, namespace, name, err)
            if err.status in (404, 409) and not error.permanent:
                return False
            raise error from err

    # --- lists and watches (used by the informers) ------------------------------------------

    def lister(self, kind: str, namespace: str) -> Callable[..., Any]:
        """The raw list function of a kind: it takes the client's keyword names (``watch=True``
        for a watch, as :class:`kubernetes.watch.Watch` calls it) and returns the unread
        response. An error answer raises trainbed's error for ``list`` or ``watch``."""
        path = self._collection(kind, namespace)

        def list_kind(**kwargs: Any) -> Any:
            timeout = TIMEOUT
            verb = "list"
            if kwargs.get("watch"):
                verb = "watch"
                timeout = urllib3.Timeout(
                    connect=10, read=float(kwargs.get("timeout_seconds") or 300) + 30
                )
            return _wrap(
                verb,
                kind,
                namespace,
                "",
                lambda: self.request("GET", path, timeout=timeout, **kwargs),
            )

        return list_kind

    def pod_phase(self, namespace: str, name: str) -> str | None:
        pod = self.get_object("Pod", namespace, name)
        return None if pod is None else (pod.get("status") or {}).get("phase")

    def pod_log(self, namespace: str, name: str, container: str = "worker") -> str:
        path = self._object("Pod", namespace, name) + "/log"
        return _wrap(
            "get",
            "Pod",
            namespace,
            name,
            lambda: _raw(self.request("GET", path, container=container)).decode(errors="replace"),
            sub="log",
        )

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.list_objects("Pod", namespace, selector)

    def exec_stream(self, namespace: str, pod: str, command: list[str]) -> Iterator[bytes]:
        """Run a command in a pod and yield its stdout bytes (the API's exec stream)."""
        resp = _wrap(
            "create",
            "Pod",
            namespace,
            pod,
            lambda: client.exec_stream(self.api_client, namespace, pod, command),
            sub="exec",
        )
        yield from resp
