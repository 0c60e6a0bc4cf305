"""Which namespace a command means, resolved as kubectl resolves it: ``--namespace``, else the
campaign file's ``metadata.namespace``, else (in a pod) the pod's own, else the kubeconfig
context's, else ``default``."""

from __future__ import annotations

import os
from pathlib import Path

from trainbed.contract.errors import UserError
from trainbed.orchestrator.kube.adapter import client

#: Where a pod finds its own namespace (the service-account volume).
POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
