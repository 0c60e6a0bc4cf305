"""The Campaign CRD on the test cluster, installed the way the controller tests and the kwok
benchmarks need it: created, or brought up to date where a cluster reused across sessions has
an older one, and Established before anything applies a Campaign."""

from __future__ import annotations

import time

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.objects.crd import campaign_crd


def install_campaign_crd(api: KubeApi, timeout_s: float = 60) -> None:
    """Create or replace the CRD, then wait until the API server serves it."""
    ext = client.ApiextensionsV1Api(api.api_client)
    crd = campaign_crd()
    name = crd["metadata"]["name"]
    try:
        ext.create_custom_resource_definition(crd)
    except ApiException as err:
        if err.status != 409:
            raise
        current = ext.read_custom_resource_definition(name)
        body = {
            **crd,
            "metadata": {**crd["metadata"], "resourceVersion": current.metadata.resource_version},
        }
        ext.replace_custom_resource_definition(name, body)
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        got = ext.read_custom_resource_definition(name)
        if any(c.type == "Established" and c.status == "True" for c in got.status.conditions or []):
            return
        time.sleep(0.5)
    raise AssertionError("the Campaign CRD never became Established")
