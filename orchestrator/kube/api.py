"""The one adapter that talks to the Kubernetes API. Every call goes through here.

It maps the client's ``ApiException`` to :class:`~trainbed.contract.errors.ClusterError`
naming the kind and namespace/name, chaining the original, and makes creation idempotent: an
object that already exists under its deterministic name is not an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trainbed.contract.errors import ClusterError, UserError

GROUP = "trainbed.io"
VERSION = "v1alpha1"
PLURAL = "campaigns"
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


class KubeApi:
    """Typed-enough access to the objects trainbed manages."""

    def __init__(self, api_client: client.ApiClient) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)

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

    # --- generic create/delete by kind ------------------------------------------------------

    def create(self, obj: dict[str, Any]) -> bool:
        """Create ``obj``; False when it already existed (deterministic names make this a no-op)."""
        kind = obj["kind"]
        namespace = obj["metadata"].get("namespace", "default")
        name = obj["metadata"]["name"]
        raw = {"_preload_content": False}
        creators: dict[str, Callable[[], Any]] = {
            "Job": lambda: self.batch.create_namespaced_job(namespace, obj, **raw),
            "Service": lambda: self.core.create_namespaced_service(namespace, obj, **raw),
            "ConfigMap": lambda: self.core.create_namespaced_config_map(namespace, obj, **raw),
            "Pod": lambda: self.core.create_namespaced_pod(namespace, obj, **raw),
            "PersistentVolumeClaim": lambda: self.core.create_namespaced_persistent_volume_claim(
                namespace, obj, **raw
            ),
            "Campaign": lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, obj, **raw
            ),
        }
        assert kind in creators, f"trainbed never creates a {kind}"
        try:
            _raw(creators[kind]())
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
        """Delete; False when it was already gone."""
        body = {"propagationPolicy": "Background"}
        raw = {"_preload_content": False}
        deleters: dict[str, Callable[[], Any]] = {
            "Job": lambda: self.batch.delete_namespaced_job(name, namespace, body=body, **raw),
            "Service": lambda: self.core.delete_namespaced_service(name, namespace, **raw),
            "ConfigMap": lambda: self.core.delete_namespaced_config_map(name, namespace, **raw),
            "Pod": lambda: self.core.delete_namespaced_pod(
                name, namespace, grace_period_seconds=0, **raw
            ),
            "Campaign": lambda: self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, **raw
            ),
        }
        try:
            _raw(deleters[kind]())
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
            return _raw(
                self.custom.get_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, name, _preload_content=False
                )
            )
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
        return _wrap(
            f"patch Campaign {namespace}/{name}",
            lambda: self.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"spec": obj["spec"]},
                _content_type=MERGE_PATCH,
            ),
        )

    def patch_campaign_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        _wrap(
            f"patch Campaign {namespace}/{name} status",
            lambda: _raw(
                self.custom.patch_namespaced_custom_object_status(
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    {"status": status},
                    _content_type=MERGE_PATCH,
                    _preload_content=False,
                )
            ),
        )

    # --- raw reads and patches of core objects ------------------------------------------------

    def get_object(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object as JSON; None when it does not exist."""
        readers: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.read_namespaced_config_map,
            "PersistentVolumeClaim": self.core.read_namespaced_persistent_volume_claim,
            "Job": self.batch.read_namespaced_job,
        }
        try:
            return json.loads(_raw(readers[kind](name, namespace, _preload_content=False)))
        except ApiException as err:
            if err.status == 404:
                return None
            raise ClusterError(f"get {kind} {namespace}/{name}: {err.status} {err.reason}") from err

    def list_objects(self, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
        """Every object of ``kind`` matching ``selector``, as JSON, listed in pages."""
        listers: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.list_namespaced_config_map,
            "Pod": self.core.list_namespaced_pod,
            "Job": self.batch.list_namespaced_job,
        }
        items: list[dict[str, Any]] = []
        token = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": selector, "limit": PAGE}
            if token:
                kwargs["_continue"] = token
            data = _wrap(
                f"list {kind} in {namespace} ({selector})",
                lambda kw=kwargs: json.loads(
                    _raw(listers[kind](namespace, _preload_content=False, **kw))
                ),
            )
            items += data.get("items") or []
            token = (data.get("metadata") or {}).get("continue")
            if not token:
                return items

    def patch_object(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> bool:
        """A merge patch; False when the object does not exist."""
        patchers: dict[str, Callable[..., Any]] = {
            "ConfigMap": self.core.patch_namespaced_config_map,
        }
        try:
            _raw(
                patchers[kind](
                    name, namespace, body, _content_type=MERGE_PATCH, _preload_content=False
                )
            )
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise ClusterError(
                f"patch {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    # --- lists and watches (used by the informers) ------------------------------------------

    def lister(self, kind: str, namespace: str) -> Callable[..., Any]:
        """The raw list function for a kind; watches call it with watch=True."""
        listers: dict[str, Callable[..., Any]] = {
            "Job": lambda **kw: self.batch.list_namespaced_job(namespace, **kw),
            "Pod": lambda **kw: self.core.list_namespaced_pod(namespace, **kw),
            "Campaign": lambda **kw: self.custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, **kw
            ),
        }
        return listers[kind]

    def pod_phase(self, namespace: str, name: str) -> str | None:
        try:
            pod = self.core.read_namespaced_pod(name, namespace)
        except ApiException as err:
            if err.status == 404:
                return None
            raise ClusterError(f"get Pod {namespace}/{name}: {err.status} {err.reason}") from err
        return pod.status.phase if pod.status else None

    def pod_log(self, namespace: str, name: str, container: str = "worker") -> str:
        return _wrap(
            f"logs of Pod {namespace}/{name}",
            lambda: self.core.read_namespaced_pod_log(name, namespace, container=container),
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
