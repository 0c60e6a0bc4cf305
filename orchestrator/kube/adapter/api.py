"""The one adapter that talks to the Kubernetes API. Every call goes through here.

It maps API errors to :class:`~trainbed.contract.errors.ClusterError` naming the kind and
namespace/name, chaining the original ``ApiException``, and makes creation idempotent: an object
that already exists under its deterministic name is not an error.

Requests go over the client's own connection pool and credentials (kubeconfig, or the pod's
service account), but as plain JSON over REST paths: the client's typed API classes cost 15 s to
import on a loaded 2-core machine (hundreds of pydantic models), validate every call's arguments
and build a model of every response, which is more CPU than the API server spends per request.
The typed classes stay available (``core``, ``batch``, ``custom``, loaded on first use) for
tests and for the exec stream of ``trainbed collect``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trainbed.contract.env import GROUP, PLURAL, VERSION
from trainbed.contract.errors import ClusterError, UserError

MERGE_PATCH = "application/merge-patch+json"
#: Connections kept open: the informers' watches plus the trial-creation thread pool.
POOL_SIZE = 32
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


def _raw(response: Any) -> bytes:
    """Read and release a ``_preload_content=False`` response: its bytes, never a model.

    The client's model classes cost more CPU per object than the request itself; trainbed reads
    what it needs from plain JSON."""
    try:
        return response.data
    finally:
        response.release_conn()


def _no_such_kind(err: ApiException) -> bool:
    """A 404 for the resource type itself (no CRD), not for one object: the API server answers
    it with a plain "404 page not found" instead of a Status naming the object."""
    if err.status != 404:
        return False
    body = err.body.decode() if isinstance(err.body, bytes) else str(err.body or "")
    try:
        details = json.loads(body).get("details") or {}
    except ValueError:
        return True
    return not details.get("name")


def context_namespace(kubeconfig: str | None = None) -> str:
    """The namespace kubectl would use: in a pod its own, else the kubeconfig's current
    context's namespace, else ``default``."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and POD_NAMESPACE_FILE.exists():
        return POD_NAMESPACE_FILE.read_text().strip() or "default"
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        paths = path.split(os.pathsep) if path else [None]
        for one in paths:
            _, active = config.list_kube_config_contexts(config_file=one)
            if active:
                return (active.get("context") or {}).get("namespace") or "default"
    except (config.ConfigException, OSError, TypeError):
        pass
    return "default"


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
#: Seconds to connect and to wait for an answer (watches wait as long as they last).
TIMEOUT = urllib3.Timeout(connect=10, read=60)


class KubeApi:
    """Typed-enough access to the objects trainbed manages."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.host = api_client.configuration.host.rstrip("/")

    @property
    def core(self) -> Any:
        return client.CoreV1Api(self.api_client)

    @property
    def batch(self) -> Any:
        return client.BatchV1Api(self.api_client)

    @property
    def custom(self) -> Any:
        return client.CustomObjectsApi(self.api_client)

    @classmethod
    def from_environment(cls, kubeconfig: str | None = None) -> KubeApi:
        """In-cluster config inside a pod, else the kubeconfig (``$KUBECONFIG`` or ~/.kube)."""
        try:
            if kubeconfig is None:
                configuration = client.Configuration()
                config.load_incluster_config(client_configuration=configuration)
                configuration.connection_pool_maxsize = POOL_SIZE
                return cls(client.ApiClient(configuration))
        except config.ConfigException:
            pass
        configuration = client.Configuration()
        try:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (config.ConfigException, FileNotFoundError, TypeError) as err:
            raise ClusterError(f"no cluster configuration: {err}") from err
        configuration.connection_pool_maxsize = POOL_SIZE
        return cls(client.ApiClient(configuration))

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
        headers = {"Accept": "application/json", **self.api_client.default_headers}
        for setting in self.api_client.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body, separators=(",", ":"))
        response = self.api_client.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, preload_content=False, timeout=timeout
        )
        if not 200 <= response.status <= 299:
            text = _raw(response)
            raise ApiException(status=response.status, reason=response.reason, body=text.decode())
        return response

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
        from kubernetes.stream import stream

        resp = _wrap(
            f"exec in Pod {namespace}/{pod}",
            lambda: stream(
                self.core.connect_get_namespaced_pod_exec,
                pod,
                namespace,
                command=command,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
                binary=True,
            ),
        )
        while resp.is_open():
            resp.update(timeout=1)
            if resp.peek_stdout():
                yield resp.read_stdout()
            if resp.peek_stderr():
                resp.read_stderr()
        resp.close()
