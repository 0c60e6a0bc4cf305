"""The one adapter that talks to the Kubernetes API. Every call goes through here.

It maps the client's ``ApiException`` to :class:`~trainbed.contract.errors.ClusterError`
naming the kind and namespace/name, chaining the original, and makes creation idempotent: an
object that already exists under its deterministic name is not an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from trainbed.contract.errors import ClusterError

GROUP = "trainbed.io"
VERSION = "v1alpha1"
PLURAL = "campaigns"
MERGE_PATCH = "application/merge-patch+json"
#: Connections kept open: the informers' watches plus the trial-creation thread pool.
POOL_SIZE = 32

T = TypeVar("T")


def _wrap(what: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except ApiException as err:
        reason = err.reason or ""
        raise ClusterError(f"{what}: {err.status} {reason}".strip()) from err


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
        creators: dict[str, Callable[[], Any]] = {
            "Job": lambda: self.batch.create_namespaced_job(namespace, obj),
            "Service": lambda: self.core.create_namespaced_service(namespace, obj),
            "ConfigMap": lambda: self.core.create_namespaced_config_map(namespace, obj),
            "Pod": lambda: self.core.create_namespaced_pod(namespace, obj),
            "PersistentVolumeClaim": lambda: self.core.create_namespaced_persistent_volume_claim(
                namespace, obj
            ),
            "Campaign": lambda: self.custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, obj
            ),
        }
        assert kind in creators, f"trainbed never creates a {kind}"
        try:
            creators[kind]()
            return True
        except ApiException as err:
            if err.status == 409:
                return False
            raise ClusterError(
                f"create {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        """Delete; False when it was already gone."""
        body = client.V1DeleteOptions(propagation_policy="Background")
        deleters: dict[str, Callable[[], Any]] = {
            "Job": lambda: self.batch.delete_namespaced_job(name, namespace, body=body),
            "Service": lambda: self.core.delete_namespaced_service(name, namespace),
            "ConfigMap": lambda: self.core.delete_namespaced_config_map(name, namespace),
            "Pod": lambda: self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0),
            "Campaign": lambda: self.custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            ),
        }
        try:
            deleters[kind]()
            return True
        except ApiException as err:
            if err.status == 404:
                return False
            raise ClusterError(
                f"delete {kind} {namespace}/{name}: {err.status} {err.reason}"
            ) from err

    # --- campaigns -------------------------------------------------------------------------

    def get_campaign(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as err:
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
            lambda: self.custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,
            ),
        )

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
        result = _wrap(
            f"list Pods in {namespace} ({selector})",
            lambda: self.core.list_namespaced_pod(namespace, label_selector=selector),
        )
        return [self.api_client.sanitize_for_serialization(p) for p in result.items]

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
