"""A permission the controller lacks is a permanent error: it stops at once and names it.

A ServiceAccount gets the chart's own Role (``charts/trainbed/templates/rbac.yaml``) less
``create`` on ``jobs.batch``, and a real token for it (the TokenRequest API). The controller, run
with that token against the real control plane, stops within 30 s instead of retrying forever,
raises the error naming the verb, the resource and the namespace, and leaves the Campaign a
``Stalled`` condition that says the same. ``trainbed controller`` and ``trainbed run --backend
kubernetes`` with that account exit 2 with that one line and no traceback.
"""

# ruff: noqa: F811 (the shared fixtures are imported from test_controller)
from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.integration.test_controller import api, namespace, seed001  # noqa: F401
from trainbed.contract.errors import PermanentClusterError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.controller import Controller
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]
CHART_RBAC = ROOT / "charts" / "trainbed" / "templates" / "rbac.yaml"
ACCOUNT = "trainbed-controller"
#: The issue's bound: the controller stops and names the missing permission within this.
STOPS_WITHIN_S = 30.0


def chart_rules() -> list[dict[str, Any]]:
    """The controller Role's rules as the chart ships them (plain YAML under ``rules:``; the
    template's own lines, such as the ``kueue`` condition around the read-only Workloads
    rule, left out, so that rule is in)."""
    text = CHART_RBAC.read_text().split("rules:\n", 1)[1].split("\n---", 1)[0]
    plain = [line for line in text.splitlines() if not line.strip().startswith("{{")]
    return yaml.safe_load("\n".join(plain))


def without_create_jobs(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(rules)
    for rule in out:
        if rule["apiGroups"] == ["batch"] and rule["resources"] == ["jobs"]:
            assert "create" in rule["verbs"], "the chart's Role lets the controller create Jobs"
            rule["verbs"].remove("create")
    # ``run`` submits the Campaign with the same account (a user's Role would allow it)
    out.append({"apiGroups": ["trainbed.io"], "resources": ["campaigns"], "verbs": ["create"]})
    return out


@pytest.fixture
def token(api: KubeApi, namespace: str) -> str:
    """A token of a ServiceAccount bound to the chart's Role less ``create jobs``."""
    api.core.create_namespaced_service_account(namespace, {"metadata": {"name": ACCOUNT}})
    rbac = k8s.RbacAuthorizationV1Api(api.api_client)
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": ACCOUNT}, "rules": without_create_jobs(chart_rules())}
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": ACCOUNT},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ACCOUNT},
            "subjects": [{"kind": "ServiceAccount", "name": ACCOUNT, "namespace": namespace}],
        },
    )
    answer = api.core.create_namespaced_service_account_token(
        ACCOUNT, namespace, {"spec": {"expirationSeconds": 3600}}
    )
    return answer.status.token


def as_account(kubeconfig: Path, token: str) -> KubeApi:
    """The admin kubeconfig's server and CA, with the account's token instead of the admin's
    client certificate."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    configuration.cert_file = configuration.key_file = None
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return KubeApi(k8s.ApiClient(configuration))


def account_kubeconfig(kubeconfig: Path, token: str, path: Path) -> Path:
    data = yaml.safe_load(kubeconfig.read_text())
    for user in data["users"]:
        user["user"] = {"token": token}
    path.write_text(yaml.safe_dump(data))
    return path


def _assert_names_the_permission(message: str, namespace: str, campaign: str) -> None:
    assert message.startswith(f"create jobs.batch {namespace}/{campaign}-"), message
    assert "403 Forbidden" in message
    assert f"needs 'create' on jobs.batch in namespace {namespace}" in message
    assert f'system:serviceaccount:{namespace}:{ACCOUNT}" cannot create resource "jobs"' in message


def _stalled(api: KubeApi, namespace: str, name: str) -> Any:
    obj = api.get_campaign(namespace, name) or {}
    stalled = CampaignStatus.from_storage(obj.get("status")).condition("Stalled")
    assert stalled is not None and stalled.status == "True", obj.get("status")
    assert stalled.reason == "Forbidden"
    return stalled


def test_controller_without_create_jobs_stops_and_names_it(
    api: KubeApi, cluster: Any, namespace: str, token: str
) -> None:
    api.apply_campaign(seed001(namespace, name="noperm"))
    account = as_account(cluster.kubeconfig, token)
    began = time.monotonic()
    with pytest.raises(PermanentClusterError) as info:
        controller = Controller(account, namespace, only="noperm").start()
        try:
            controller.run(until_done=True)
        finally:
            controller.stop()
    stopped = time.monotonic() - began
    print(f"stopped {stopped:.1f} s after start: {info.value}")
    assert stopped < STOPS_WITHIN_S
    assert info.value.status == 403 and info.value.exit_code == 2
    _assert_names_the_permission(str(info.value), namespace, "noperm")
    assert _stalled(api, namespace, "noperm").message == str(info.value)
    assert api.list_objects("Job", namespace, "trainbed.io/campaign=noperm") == []


@pytest.mark.parametrize("verb", ["controller", "run"])
def test_cli_exits_2_with_one_line(
    api: KubeApi, cluster: Any, namespace: str, token: str, tmp_path: Path, verb: str
) -> None:
    name = f"noperm-{verb}"
    obj = seed001(namespace, name=name)
    api.apply_campaign(obj)
    campaign_file = tmp_path / "campaign.yaml"
    campaign_file.write_text(yaml.safe_dump(obj))
    args = {
        "controller": ["controller", "--namespace", namespace],
        "run": ["run", str(campaign_file), "--backend", "kubernetes", "--out", str(tmp_path)],
    }[verb]
    kubeconfig = account_kubeconfig(cluster.kubeconfig, token, tmp_path / "kubeconfig")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "COLUMNS": "250"}
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "trainbed.orchestrator.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    print(f"trainbed {verb} exited {proc.returncode} after {time.monotonic() - began:.1f} s")
    print(proc.stderr[-3000:])
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    _assert_names_the_permission(errors[0].removeprefix("error: "), namespace, name)
    _stalled(api, namespace, name)
