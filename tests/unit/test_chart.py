"""The Helm chart: it lints, renders schema-valid objects, and grants only the verbs used.

``helm`` comes from the project's cluster toolchain (``~/.cache/trainbed/k8s-*/bin/helm``, built
by scripts/cluster), ``$HELM`` or ``PATH``. Without it the rendering tests fail with a message that
says so, unless ``TRAINBED_SKIP_CLUSTER=1``. The values-schema and RBAC-text checks need no helm.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.cluster import launcher

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "trainbed"
NAMESPACE = "ns"

# resource -> verbs: what the controller does (docs/kubernetes.md has the why of each).
EXPECTED_RULES = {
    ("trainbed.io", "campaigns"): ["get", "list", "watch", "update", "patch"],
    ("trainbed.io", "campaigns/status"): ["get", "update", "patch"],
    ("batch", "jobs"): ["get", "list", "watch", "create", "delete"],
    ("", "pods"): ["get", "list", "watch"],
    ("", "pods/log"): ["get"],
    ("", "services"): ["get", "list", "watch", "create", "delete"],
    ("", "configmaps"): ["get", "list", "watch", "create", "patch", "delete"],
    ("", "events"): ["create", "patch"],
    ("events.k8s.io", "events"): ["create", "patch"],
    ("", "persistentvolumeclaims"): ["get"],
    ("coordination.k8s.io", "leases"): ["get", "create", "update"],
}

VALUE_SETS = {
    "defaults": [],
    "tensorboard": ["--set", "tensorboard.enabled=true", "--set", "results.storageClass=fast"],
    "bring-your-own": [
        "--set",
        "results.create=false,rbac.create=false,serviceAccount.create=false",
        "--set",
        "serviceAccount.name=runner,controller.mountResults=false,image.tag=dev",
    ],
}


def find_helm() -> str | None:
    """``$HELM``, then the cluster toolchain's helm (built by ``scripts/cluster build``, which
    ``make test`` runs first), then ``helm`` on PATH."""
    if os.environ.get("HELM"):
        return os.environ["HELM"]
    cached = Path(launcher.helm_path())  # honours $TRAINBED_CACHE
    if cached.exists():
        return str(cached)
    return shutil.which("helm")


@pytest.fixture(scope="module")
def helm() -> str:
    path = find_helm()
    if path is None:
        if os.environ.get("TRAINBED_SKIP_CLUSTER") == "1":
            pytest.skip("no helm binary (TRAINBED_SKIP_CLUSTER=1)")
        pytest.fail(
            "no helm binary: build the cluster toolchain (scripts/cluster), set $HELM, put helm "
            "on PATH, or set TRAINBED_SKIP_CLUSTER=1 to skip the chart's rendering tests"
        )
    return path


def _run(helm: str, *args: str) -> str:
    done = subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, env={**os.environ}
    )
    assert done.returncode == 0, f"helm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _render(helm: str, extra: list[str]) -> list[dict[str, Any]]:
    args = ["template", "t", str(CHART), "--namespace", NAMESPACE, "--include-crds", *extra]
    out = _run(helm, *args)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def test_helm_lint(helm: str) -> None:
    for extra in VALUE_SETS.values():
        _run(helm, "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *extra)


@pytest.mark.parametrize("extra", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_rendered_objects_validate(helm: str, extra: list[str]) -> None:
    docs = _render(helm, extra)
    assert _by_kind(docs, "CustomResourceDefinition"), "crds/ is not rendered"
    for doc in docs:
        kubernetes_validate.validate(doc, latest_version(), strict=True)
        if doc["kind"] != "CustomResourceDefinition":
            assert doc["metadata"]["namespace"] == NAMESPACE, doc["metadata"]["name"]


def test_rendered_kinds(helm: str) -> None:
    kinds = sorted(doc["kind"] for doc in _render(helm, VALUE_SETS["tensorboard"]))
    assert kinds == sorted(
        [
            "CustomResourceDefinition",
            "Deployment",
            "Deployment",
            "PersistentVolumeClaim",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    kinds = {doc["kind"] for doc in _render(helm, VALUE_SETS["bring-your-own"])}
    assert kinds == {"CustomResourceDefinition", "Deployment"}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in found, f"{group}/{resource} granted twice"
                found[(group, resource)] = list(rule["verbs"])
    return found


def test_role_grants_exactly_what_the_controller_uses(helm: str) -> None:
    docs = _render(helm, [])
    (role,) = _by_kind(docs, "Role")
    assert "*" not in json.dumps(role["rules"])
    assert "secrets" not in json.dumps(role["rules"])
    assert not any("resourceNames" in rule or "nonResourceURLs" in rule for rule in role["rules"])
    assert _rules(role) == EXPECTED_RULES
    (binding,) = _by_kind(docs, "RoleBinding")
    (account,) = _by_kind(docs, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    assert not _by_kind(docs, "ClusterRole") and not _by_kind(docs, "ClusterRoleBinding")


def test_kueue_adds_read_only_workloads_and_the_default_queue(helm: str) -> None:
    """With a queue, the controller reads Kueue's Workloads (no more) and queues every
    campaign that names none there."""
    docs = _render(helm, ["--set", "kueue.queue=team-a"])
    (role,) = _by_kind(docs, "Role")
    workloads = ("kueue.x-k8s.io", "workloads")
    assert _rules(role) == {**EXPECTED_RULES, workloads: ["get", "list", "watch"]}
    (deployment,) = [
        d for d in _by_kind(docs, "Deployment") if "controller" in d["metadata"]["name"]
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["command"]
    assert args[args.index("--default-queue") + 1] == "team-a"
    (role,) = _by_kind(_render(helm, ["--set", "kueue.enabled=true"]), "Role")
    assert _rules(role)[workloads] == ["get", "list", "watch"]


@pytest.mark.parametrize("extra", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_deployments_are_restricted(helm: str, extra: list[str]) -> None:
    for deployment in _by_kind(_render(helm, extra), "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["readOnlyRootFilesystem"] is True
            assert container["resources"]["limits"]
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert pod["automountServiceAccountToken"] is (component == "controller")
        if component == "controller":
            command = pod["containers"][0]["command"]
            assert command[:4] == ["trainbed", "controller", "--namespace", NAMESPACE]
            assert pod["serviceAccountName"]
            assert deployment["spec"]["replicas"] == 1
        else:
            mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
            assert mounts["results"]["readOnly"] is True


def test_results_pvc_outlives_the_release(helm: str) -> None:
    (pvc,) = _by_kind(_render(helm, VALUE_SETS["tensorboard"]), "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "trainbed-results"  # spec.kubernetes.results_pvc default
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert pvc["spec"]["storageClassName"] == "fast"


# --- without helm ------------------------------------------------------------------------------


def test_values_match_their_schema() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(values)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft7Validator(schema).validate({**values, "typo": 1})


def test_role_template_has_no_wildcard_or_secrets() -> None:
    """Also checked on the text, so it holds where no helm exists."""
    text = (CHART / "templates" / "rbac.yaml").read_text()
    rules = text.split("rules:", 1)[1].split("---", 1)[0]
    assert "*" not in rules and "secrets" not in rules and "exec" not in rules
    # every rule, the conditional ones too (the template's own lines left out)
    plain = "\n".join(line for line in rules.splitlines() if not line.strip().startswith("{{"))
    kueue = {("kueue.x-k8s.io", "workloads"): ["get", "list", "watch"]}
    assert _rules({"rules": yaml.safe_load(plain)}) == {**EXPECTED_RULES, **kueue}


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert (chart["apiVersion"], chart["name"]) == ("v2", "trainbed")
    assert chart["version"] == "0.1.0" and chart["appVersion"] == "0.1.0"
