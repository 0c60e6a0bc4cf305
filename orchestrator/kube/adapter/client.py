"""The only module that imports the Kubernetes client: its configuration, connection pool,
watch and exec stream, and its exception. Everything else reaches the API through
:class:`~trainbed.orchestrator.kube.adapter.api.KubeApi`, which uses this.

Requests go over the client's own connection pool and credentials (kubeconfig, or the pod's
service account), but as plain JSON over REST paths: the client's typed API classes cost 15 s to
import on a loaded 2-core machine (hundreds of pydantic models), validate every call's arguments
and build a model of every response, which is more CPU than the API server spends per request.
The typed classes stay available (:func:`typed`, loaded on first use) for tests and for the exec
stream of ``trainbed collect``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

__all__ = ["ApiClient", "ApiException", "Watch"]

ApiClient = client.ApiClient
#: A list-then-watch stream over a list function (``deserialize=False`` keeps events as JSON).
Watch = watch.Watch
#: Connections kept open: the informers' watches plus the trial-creation thread pool.
POOL_SIZE = 32
#: Seconds to connect and to wait for an answer (watches wait as long as they last).
TIMEOUT = urllib3.Timeout(connect=10, read=60)


class NoConfiguration(Exception):
    """Neither an in-cluster service account nor a readable kubeconfig."""


def load(kubeconfig: str | None = None) -> client.ApiClient:
    """In-cluster config inside a pod, else the kubeconfig (``$KUBECONFIG`` or ~/.kube)."""
    try:
        if kubeconfig is None:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            configuration.connection_pool_maxsize = POOL_SIZE
            return client.ApiClient(configuration)
    except config.ConfigException:
        pass
    configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    except (config.ConfigException, FileNotFoundError, TypeError) as err:
        raise NoConfiguration(str(err)) from err
    configuration.connection_pool_maxsize = POOL_SIZE
    return client.ApiClient(configuration)


def kubeconfig_namespace(path: str | None) -> str | None:
    """The current context's namespace in the kubeconfig(s) at ``path`` (``os.pathsep``
    separated, as ``$KUBECONFIG``), or None where none is set or nothing can be read."""
    try:
        paths = path.split(os.pathsep) if path else [None]
        for one in paths:
            _, active = config.list_kube_config_contexts(config_file=one)
            if active:
                return (active.get("context") or {}).get("namespace") or None
    except (config.ConfigException, OSError, TypeError):
        pass
    return None


def typed(api_client: client.ApiClient, group: str) -> Any:
    """The client's typed API class for ``group`` (``core``, ``batch``, ``custom``)."""
    classes = {
        "core": client.CoreV1Api,
        "batch": client.BatchV1Api,
        "custom": client.CustomObjectsApi,
    }
    return classes[group](api_client)


def _raw(response: Any) -> bytes:
    """Read and release a ``_preload_content=False`` response: its bytes, never a model."""
    try:
        return response.data
    finally:
        response.release_conn()


def send(
    api_client: client.ApiClient,
    method: str,
    url: str,
    *,
    data: str | None,
    content_type: str,
    timeout: urllib3.Timeout,
    accept: str = "application/json",
) -> Any:
    """One request over the client's pool with its credentials; the unread urllib3 response,
    or :class:`ApiException` on a non-2xx status or no answer at all (``status`` None)."""
    headers = {"Accept": accept, **api_client.default_headers}
    for setting in api_client.configuration.auth_settings().values():
        if setting.get("in") == "header" and setting.get("value"):
            headers[setting["key"]] = setting["value"]
    if data is not None:
        headers["Content-Type"] = content_type
    try:
        response = api_client.rest_client.pool_manager.request(
            method, url, body=data, headers=headers, preload_content=False, timeout=timeout
        )
    except (urllib3.exceptions.HTTPError, ConnectionError) as err:
        # no answer (a timeout, a reset or refused connection): an ApiException without status
        raise ApiException(reason=f"{type(err).__name__}: {err}") from err
    if not 200 <= response.status <= 299:
        text = _raw(response)
        error = ApiException(status=response.status, reason=response.reason, body=text.decode())
        error.headers = response.headers
        raise error
    return response


def exec_stream(
    api_client: client.ApiClient, namespace: str, pod: str, command: list[str]
) -> Iterator[bytes]:
    """Run a command in a pod and yield its stdout bytes (the API's exec stream)."""
    from kubernetes.stream import stream

    resp = stream(
        client.CoreV1Api(api_client).connect_get_namespaced_pod_exec,
        pod,
        namespace,
        command=command,
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
        _preload_content=False,
        binary=True,
    )
    return _drain(resp)


def _drain(resp: Any) -> Iterator[bytes]:
    while resp.is_open():
        resp.update(timeout=1)
        if resp.peek_stdout():
            yield resp.read_stdout()
        if resp.peek_stderr():
            resp.read_stderr()
    resp.close()


def body_json(err: ApiException) -> Any:
    """The Status an error response carried, or None where its body is not JSON."""
    body = err.body.decode() if isinstance(err.body, bytes) else str(err.body or "")
    try:
        return json.loads(body)
    except ValueError:
        return None


OnEvent = Callable[[dict[str, Any]], None]
