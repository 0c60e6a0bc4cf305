"""The trial's Kubernetes objects: schema-valid, restricted, deterministic, and DDP-consistent.

Every rendered object is checked against the official OpenAPI schema of the newest Kubernetes
release that kubernetes-validate ships, in strict mode (unknown fields are errors). The real API
server sees them in the integration tests.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.cluster.simulated import SIM_DURATION
from trainbed.contract.campaign import Campaign
from trainbed.contract.env import ENFORCEMENT
from trainbed.contract.errors import SpecError
from trainbed.contract.kueue import PRIORITY_CLASS_LABEL, QUEUE_LABEL
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.kube.objects import manifests, metadata, results_volume
from trainbed.orchestrator.plan.design import build_design
from trainbed.orchestrator.plan.parse import load_campaign, parse_campaign
from trainbed.orchestrator.plan.trials import trial_spec

ROOT = Path(__file__).resolve().parents[2]
K8S_VERSION = latest_version()
NAMESPACE = "experiments"
OWNER = {
    "apiVersion": "trainbed.io/v1alpha1",
    "kind": "Campaign",
    "metadata": {"name": "fmnist-2k1", "uid": "0b6c3b8e-1f5e-4c1e-9d1a-2f4a4c7d9e01"},
}


#: spec.kubernetes's node_selector and tolerations as the pods carry them (the real node's)
PLACEMENT = {
    "nodeSelector": {"trainbed.io/real-node": "true"},
    "tolerations": [
        {
            "key": "trainbed.io/real-node",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        },
        {
            "key": "node.kubernetes.io/unreachable",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 30,
        },
    ],
}


def _fmnist() -> Campaign:
    return load_campaign(ROOT / "experiments" / "fmnist-2k1.yaml")


def _single_rank() -> Campaign:
    """A parallelism-1, GPU, annotated campaign with a fractional timeout and retries."""
    data = _fmnist().model_dump(mode="json", exclude_none=True)
    data["metadata"] = {"name": "solo"}
    data["spec"]["trial"]["workload"]["parallelism"] = 1
    data["spec"]["trial"]["resources"] = {"cpu": "250m", "memory": "512Mi", "gpu": 1}
    data["spec"]["factors"] = [
        {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]},
        {"name": "batch_", "target": "workload.batch_size", "levels": [32, 64]},
    ]
    data["spec"]["design"] = {"type": "full", "replicates": 1}
    data["spec"]["execution"] = {"trial_timeout_s": 90.5, "retries": 2}
    data["spec"]["kubernetes"] = {
        "image": "registry.example/trainbed:0.1.0",
        "results_pvc": "res",
        "results_path": "/data/results/",
        "master_port": 23456,
        "pod_annotations": {SIM_DURATION: "5s"},
        "node_selector": PLACEMENT["nodeSelector"],
        "tolerations": PLACEMENT["tolerations"],
        "queue": "team-a",
        "priority_class": "low",
    }
    return Campaign.model_validate(data)


def _cases() -> list[tuple[str, Campaign, TrialSpec]]:
    cases = []
    for campaign in (_fmnist(), _single_rank()):
        runs = build_design(campaign).runs
        for run in (runs[0], runs[-1]):
            cases.append((f"{campaign.name}-{run.trial_id}", campaign, trial_spec(campaign, run)))
    return cases


CASES = _cases()
IDS = [case[0] for case in CASES]


def _render(campaign: Campaign, trial: TrialSpec) -> dict[str, dict[str, Any]]:
    owner = metadata.owner_reference(OWNER)
    return {
        "job": manifests.trial_job(campaign, trial, namespace=NAMESPACE, owner=owner),
        "service": manifests.trial_service(campaign, trial, namespace=NAMESPACE, owner=owner),
        "configmap": manifests.trial_configmap(campaign, trial, namespace=NAMESPACE, owner=owner),
    }


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def assert_restricted(pod_spec: dict[str, Any]) -> None:
    """The "restricted" Pod Security Standard (v1.30+) for one pod spec, plus no token."""
    pod = pod_spec.get("securityContext", {})
    assert pod.get("runAsNonRoot") is True
    assert pod.get("runAsUser", 1) != 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert pod_spec["automountServiceAccountToken"] is False
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID")
    for volume in pod_spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= {"configMap", "emptyDir", "persistentVolumeClaim", "secret"}, volume
    for container in pod_spec["containers"] + pod_spec.get("initContainers", []):
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"]
        assert not sc["capabilities"].get("add")
        assert sc["readOnlyRootFilesystem"] is True
        assert not sc.get("privileged")
        assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_objects_validate_strictly(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    for obj in _render(campaign, trial).values():
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_rendering_is_deterministic_and_pure(
    case: str, campaign: Campaign, trial: TrialSpec
) -> None:
    before = trial.model_dump()
    first = _render(campaign, trial)
    snapshot = copy.deepcopy(first)
    assert _render(campaign, trial) == snapshot
    # Callers may patch what they get (the executor adds fields): nothing is shared.
    first["job"]["metadata"]["labels"]["x"] = "y"
    first["job"]["spec"]["template"]["spec"]["containers"][0]["env"].clear()
    assert _render(campaign, trial) == snapshot
    assert trial.model_dump() == before
    names = {obj["metadata"]["name"] for obj in first.values()}
    assert names == {f"{campaign.name}-{trial.trial_id}"}


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_job_shape(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    job = _render(campaign, trial)["job"]
    spec = job["spec"]
    world = trial.workload.parallelism
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == world
    assert spec["backoffLimit"] == campaign.spec.execution.retries
    assert spec["activeDeadlineSeconds"] >= campaign.spec.execution.trial_timeout_s
    assert isinstance(spec["activeDeadlineSeconds"], int)
    assert "ttlSecondsAfterFinished" not in spec
    assert spec["podReplacementPolicy"] == "Failed"
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    assert pod["subdomain"] == _render(campaign, trial)["service"]["metadata"]["name"]
    assert pod["enableServiceLinks"] is False
    assert_restricted(pod)
    assert job["metadata"]["ownerReferences"][0]["uid"] == OWNER["metadata"]["uid"]


def test_pod_failure_policy() -> None:
    rules = manifests.pod_failure_policy()["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "worker", "operator": "In", "values": [137]}
    _, campaign, trial = CASES[0]
    job = manifests.trial_job(campaign, trial, namespace=NAMESPACE)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == rules[1]["onExitCodes"]["containerName"]


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_container(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    k8s = campaign.spec.kubernetes
    pod = _render(campaign, trial)["job"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == k8s.image
    root = k8s.results_path.rstrip("/")
    assert container["command"] == [
        "trainbed",
        "worker",
        "--spec",
        "/etc/trainbed/trial.json",
        "--out",
        f"{root}/{campaign.name}/trials/{trial.trial_id}",
    ]
    resources = container["resources"]
    assert resources["requests"] == resources["limits"]
    assert resources["limits"]["cpu"] == trial.resources.cpu
    assert resources["limits"]["memory"] == trial.resources.memory
    assert ("nvidia.com/gpu" in resources["limits"]) == (trial.resources.gpu > 0)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert mounts["results"]["mountPath"] == k8s.results_path
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == k8s.results_pvc
    assert mounts["trial-spec"] == {
        "name": "trial-spec",
        "mountPath": "/etc/trainbed",
        "readOnly": True,
    }
    assert volumes["trial-spec"]["configMap"]["name"] == f"{campaign.name}-{trial.trial_id}"


# CPU limit -> OMP/MKL threads: ceil of the limit, at least one.
@pytest.mark.parametrize(
    ("cpu", "threads"), [("250m", "1"), ("750m", "1"), ("1", "1"), ("1500m", "2"), ("3", "3")]
)
def test_threads_follow_cpu_limit(cpu: str, threads: str) -> None:
    _, campaign, trial = CASES[0]
    trial = trial.model_copy(update={"resources": trial.resources.model_copy(update={"cpu": cpu})})
    job = manifests.trial_job(campaign, trial, namespace="n")
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == threads


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_ddp_env(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    k8s = campaign.spec.kubernetes
    job = _render(campaign, trial)["job"]
    env = _env(job["spec"]["template"]["spec"]["containers"][0])
    name = job["metadata"]["name"]
    assert env["RANK"] == {
        "fieldRef": {
            "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        }
    }
    assert env["WORLD_SIZE"] == str(trial.workload.parallelism)
    assert env["MASTER_ADDR"] == f"{name}-0.{name}"
    assert env["MASTER_PORT"] == str(k8s.master_port)
    assert env["TRAINBED_DATA"] == f"{k8s.results_path.rstrip('/')}/data"
    assert json.loads(env["TRAINBED_ENFORCEMENT"]) == {
        "mode": "kubernetes",
        "cpu": trial.resources.cpu,
        "memory": trial.resources.memory,
        "requests_equal_limits": True,
        **({"gpu": trial.resources.gpu} if trial.resources.gpu else {}),
    }
    # bounded waits: a rank whose peer's pod is gone fails, it does not hang to the deadline
    assert float(env["TRAINBED_RDZV_TIMEOUT"]) <= 300
    assert float(env["TRAINBED_COLLECTIVE_TIMEOUT"]) <= 120
    service = _render(campaign, trial)["service"]
    assert service["spec"]["ports"][0]["port"] == k8s.master_port


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_labels_and_annotations(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    objects = _render(campaign, trial)
    expected = {
        "trainbed.io/campaign": campaign.name,
        "trainbed.io/trial": trial.trial_id,
        "trainbed.io/replicate": str(trial.replicate),
        "app.kubernetes.io/name": "trainbed",
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": "trainbed",
        "app.kubernetes.io/instance": campaign.name,
    }
    template = objects["job"]["spec"]["template"]["metadata"]
    queued = manifests.queue_labels(campaign.spec.kubernetes)  # the Job's alone
    for name, obj in objects.items():
        assert obj["metadata"]["labels"] == {**expected, **(queued if name == "job" else {})}
    assert template["labels"] == expected
    service = objects["service"]["spec"]
    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is True
    assert service["selector"].items() <= template["labels"].items()
    assert set(service["selector"]) == {"trainbed.io/campaign", "trainbed.io/trial"}
    annotations = objects["job"]["metadata"]["annotations"]
    assert json.loads(annotations["trainbed.io/levels"]) == trial.levels
    for factor in campaign.spec.factors:
        key = f"trainbed.io/level.{factor.name}".rstrip("_")
        assert annotations[key] == (
            trial.levels[factor.name]
            if isinstance(trial.levels[factor.name], str)
            else json.dumps(trial.levels[factor.name])
        )
    for key, value in campaign.spec.kubernetes.pod_annotations.items():
        assert template["annotations"][key] == value
    assert annotations.items() <= template["annotations"].items()


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_configmap_holds_the_trial(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    configmap = _render(campaign, trial)["configmap"]
    assert configmap["immutable"] is True
    assert TrialSpec.model_validate_json(configmap["data"]["trial.json"]) == trial


@pytest.mark.parametrize(
    ("campaign", "trial_id"), [("a", "t0123456789"), ("a" * 40, "tffffffffff")]
)
def test_job_name_is_a_dns_label(campaign: str, trial_id: str) -> None:
    name = metadata.job_name(campaign, trial_id)
    assert len(name) <= 63 and name[0].isalpha() and name == name.lower()
    assert metadata.master_addr(campaign, trial_id) == f"{name}-0.{name}"


@pytest.mark.parametrize(
    ("storage_class", "access_mode"),
    [(None, "ReadWriteMany"), ("standard", "ReadWriteOnce")],
)
def test_results_pvc(storage_class: str | None, access_mode: str) -> None:
    pvc = results_volume.results_pvc(
        "trainbed-results", "20Gi", storage_class, NAMESPACE, access_mode=access_mode
    )
    kubernetes_validate.validate(pvc, K8S_VERSION, strict=True)
    assert pvc["spec"]["accessModes"] == [access_mode]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"].get("storageClassName") == storage_class


def test_reader_pod() -> None:
    pod = results_volume.reader_pod(
        "fmnist-2k1", "trainbed-results", "/results", NAMESPACE, image="img:1"
    )
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert pod["metadata"]["name"] == "fmnist-2k1-reader"
    assert pod["metadata"]["labels"]["trainbed.io/campaign"] == "fmnist-2k1"
    spec = pod["spec"]
    assert_restricted(spec)
    (container,) = spec["containers"]
    assert container["image"] == "img:1"
    assert container["command"][0] == "sleep"
    results = next(m for m in container["volumeMounts"] if m["name"] == "results")
    assert results == {"name": "results", "mountPath": "/results", "readOnly": True}
    claim = next(v for v in spec["volumes"] if v["name"] == "results")["persistentVolumeClaim"]
    assert claim == {"claimName": "trainbed-results", "readOnly": True}
    assert spec["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_placement(case: str, campaign: Campaign, trial: TrialSpec) -> None:
    """spec.kubernetes's tolerations and node selector reach every worker pod, as written;
    a campaign that sets neither leaves the scheduler free."""
    pod = _render(campaign, trial)["job"]["spec"]["template"]["spec"]
    placed = {k: pod[k] for k in ("nodeSelector", "tolerations") if k in pod}
    k8s = campaign.spec.kubernetes
    assert placed == (PLACEMENT if k8s.tolerations else {})
    assert manifests.placement(k8s) == placed


def test_reader_pod_goes_where_the_workers_went() -> None:
    """collect's reader pod carries the workers' placement: a volume bound on a tainted node
    (a local or hostPath PV) is only reachable there."""
    pod = results_volume.reader_pod(
        "solo",
        "res",
        "/results",
        NAMESPACE,
        placement=manifests.placement(_single_rank().spec.kubernetes),
    )
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)
    assert pod["spec"]["nodeSelector"] == PLACEMENT["nodeSelector"]
    assert pod["spec"]["tolerations"] == PLACEMENT["tolerations"]
    plain = results_volume.reader_pod("solo", "res", "/results", NAMESPACE)
    assert "nodeSelector" not in plain["spec"] and "tolerations" not in plain["spec"]


@pytest.mark.parametrize(
    ("toleration", "reason"),
    [
        ({"key": "a", "operator": "Exists", "value": "x"}, "Exists takes no value"),
        ({"value": "x"}, "without a key needs operator Exists"),
        ({"key": "a", "effect": "NoSchedule", "tolerationSeconds": 5}, "NoExecute only"),
        ({"key": "a", "effect": "NoSchedul"}, "NoSchedule"),
        ({"key": "a", "operatr": "Exists"}, "operatr"),
    ],
)
def test_bad_toleration_is_a_spec_error(toleration: dict[str, Any], reason: str) -> None:
    data = _fmnist().model_dump(mode="json", exclude_none=True)
    data["spec"]["kubernetes"] = {"tolerations": [toleration]}
    with pytest.raises(SpecError) as err:
        parse_campaign(data)
    assert err.value.field.startswith("spec.kubernetes.tolerations")
    assert reason in str(err.value)


def _bandwidth_campaign(
    bandwidth_levels: list[Any], pod_annotations: dict[str, str] | None = None
) -> Campaign:
    data = _fmnist().model_dump(mode="json", exclude_none=True)
    data["metadata"] = {"name": "net"}
    data["spec"]["factors"] = [
        {"name": "bandwidth", "target": "resources.bandwidth", "levels": bandwidth_levels},
        {"name": "lr", "target": "workload.lr", "levels": [0.01, 0.1]},
    ]
    data["spec"]["design"] = {"type": "full", "replicates": 1, "randomize": False}
    data["spec"]["kubernetes"] = {"pod_annotations": pod_annotations or {}}
    return Campaign.model_validate(data)


@pytest.mark.parametrize(
    ("levels", "pod_annotations", "expected"),
    [
        (["20M", "1G"], None, ["20M", "20M", "1G", "1G"]),
        ([20000000, None], None, ["20000000", "20000000", None, None]),
        # the trial's level wins over a hand-written annotation of the same name
        (["10M", "100M"], {manifests.EGRESS_BANDWIDTH: "1k"}, ["10M", "10M", "100M", "100M"]),
    ],
)
def test_bandwidth_becomes_both_pod_annotations(
    levels: list[Any], pod_annotations: dict[str, str] | None, expected: list[str | None]
) -> None:
    campaign = _bandwidth_campaign(levels, pod_annotations)
    seen = []
    for run in build_design(campaign).runs:
        trial = trial_spec(campaign, run)
        job = manifests.trial_job(campaign, trial, namespace=NAMESPACE)
        kubernetes_validate.validate(job, K8S_VERSION, strict=True)
        pod = job["spec"]["template"]["metadata"]["annotations"]
        ingress = pod.get(manifests.INGRESS_BANDWIDTH)
        assert pod.get(manifests.EGRESS_BANDWIDTH) == ingress  # both directions, one rate
        seen.append(ingress)
        record = json.loads(_env(job["spec"]["template"]["spec"]["containers"][0])[ENFORCEMENT])
        if ingress is None:
            assert "network" not in record
        else:
            assert record["network"]["bandwidth"] == ingress
            assert record["network"]["read_back"] is None  # asked for, not read back
        # the Job itself carries the levels only; the CNI reads the pods' annotations
        assert manifests.EGRESS_BANDWIDTH not in job["metadata"].get("annotations", {})
    assert sorted(seen, key=str) == sorted(expected, key=str)


@pytest.mark.parametrize(("case", "campaign", "trial"), CASES, ids=IDS)
def test_queue_hands_the_job_to_kueue_suspended(
    case: str, campaign: Campaign, trial: TrialSpec
) -> None:
    """With a queue the Job carries Kueue's labels and starts suspended; without, neither."""
    job = _render(campaign, trial)["job"]
    queue = campaign.spec.kubernetes.queue
    labels = job["metadata"]["labels"]
    if queue:
        assert labels[QUEUE_LABEL] == queue
        assert labels[PRIORITY_CLASS_LABEL] == campaign.spec.kubernetes.priority_class
        assert job["spec"]["suspend"] is True
    else:
        assert QUEUE_LABEL not in labels and PRIORITY_CLASS_LABEL not in labels
        assert "suspend" not in job["spec"]
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert QUEUE_LABEL not in pod_labels and PRIORITY_CLASS_LABEL not in pod_labels
    assert {case for case, c, _ in CASES if c.spec.kubernetes.queue}, "no queued case"


@pytest.mark.parametrize(
    ("settings", "field", "reason"),
    [
        ({"queue": "Team_A"}, "spec.kubernetes.queue", "pattern"),
        ({"queue": "q" * 64}, "spec.kubernetes.queue", "at most 63"),
        ({"priority_class": "high"}, "spec.kubernetes", "needs a queue"),
    ],
)
def test_bad_queue_is_a_spec_error(settings: dict[str, Any], field: str, reason: str) -> None:
    data = _fmnist().model_dump(mode="json", exclude_none=True)
    data["spec"]["kubernetes"] = settings
    with pytest.raises(SpecError) as err:
        parse_campaign(data)
    assert err.value.field == field
    assert reason in str(err.value)


def test_queue_from_the_command_line_overrides_the_file(tmp_path: Path) -> None:
    text = (ROOT / "experiments" / "fmnist-2k1.yaml").read_text()
    assert load_campaign(ROOT / "experiments" / "fmnist-2k1.yaml").spec.kubernetes.queue is None
    path = tmp_path / "c.yaml"
    path.write_text(text)
    campaign = load_campaign(path, kubernetes={"queue": "team-b"})
    assert campaign.spec.kubernetes.queue == "team-b"
    assert campaign.spec.kubernetes.image == _fmnist().spec.kubernetes.image  # the rest stands
    with pytest.raises(SpecError) as err:
        load_campaign(path, kubernetes={"queue": "no spaces"})
    assert err.value.field == "spec.kubernetes.queue"
