"""Names, labels, annotations, owner references and the restricted security profile of every
object trainbed creates in a cluster. Pure.

Names are deterministic (``<campaign>-<trial_id>``), so creating a trial twice is a no-op
(AlreadyExists), never a duplicate. Every object carries ``trainbed.io/campaign``, so ``kubectl
get pods -l trainbed.io/campaign=NAME`` finds a campaign's pods, and an owner reference to its
Campaign, so deleting the Campaign garbage-collects them. The pods, trainbed's own and the
results reader alike, pass the "restricted" Pod Security Standard as the image's user.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath
from typing import Any

from trainbed.contract.campaign import Campaign
from trainbed.contract.env import (
    API_VERSION,
    CAMPAIGN_LABEL,
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    LEVELS_ANNOTATION,
    MANAGED_BY,
    MANAGER,
    NAME_LABEL,
    REPLICATE_LABEL,
    TRIAL_LABEL,
    WORKER_COMPONENT,
    factor_annotation,
)
from trainbed.contract.layout import ResultsLayout
from trainbed.contract.trial import TrialSpec

#: The non-root user and group the image creates (Dockerfile) and the pods run as.
RUN_AS = 1000

_ANNOTATION_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


# --- names and metadata ----------------------------------------------------------------------


def job_name(campaign: str, trial_id: str) -> str:
    """The Job's name, also the Service's and the ConfigMap's: ``<campaign>-<trial_id>``.

    Campaign names are DNS labels of at most 40 characters starting with a letter and trial IDs
    are "t" + 10 hex digits, so this is a DNS-1035 label of at most 52 characters.
    """
    name = f"{campaign}-{trial_id}"
    assert len(name) <= 63, name
    return name


def service_name(campaign: str, trial_id: str) -> str:
    """The headless Service's name; it is the pods' ``subdomain``, hence the DNS of each rank."""
    return job_name(campaign, trial_id)


def master_addr(campaign: str, trial_id: str) -> str:
    """Rank 0's DNS name: Indexed Jobs name pod hostnames ``<job>-<index>``."""
    return f"{job_name(campaign, trial_id)}-0.{service_name(campaign, trial_id)}"


def trial_dir(campaign: Campaign, trial_id: str) -> str:
    """The trial's directory on the results PVC, as the pods see it (results-dir contract)."""
    mount = PurePosixPath(campaign.spec.kubernetes.results_path)
    return str(ResultsLayout.under(mount, campaign.name).trial(trial_id).root)


def campaign_labels(campaign: str) -> dict[str, str]:
    """Labels every object of a campaign carries; ``trainbed.io/campaign`` selects them all."""
    return {
        NAME_LABEL: MANAGER,
        INSTANCE_LABEL: campaign,
        MANAGED_BY: MANAGER,
        CAMPAIGN_LABEL: campaign,
    }


def trial_labels(trial: TrialSpec) -> dict[str, str]:
    """Labels of a trial's Job, pods, Service and ConfigMap (DESIGN: Kubernetes conventions)."""
    return {
        **campaign_labels(trial.campaign),
        COMPONENT_LABEL: WORKER_COMPONENT,
        TRIAL_LABEL: trial.trial_id,
        REPLICATE_LABEL: str(trial.replicate),
    }


def _level_text(level: Any) -> str:
    """A level as an annotation value: strings as written, anything else as JSON."""
    return level if isinstance(level, str) else json.dumps(level)


def level_annotations(trial: TrialSpec) -> dict[str, str]:
    """The trial's factor levels: all of them as JSON, plus one readable key per factor.

    Factor names may end in ``_`` or exceed 63 characters, which annotation names may not; such a
    per-factor key is trimmed, and ``trainbed.io/levels`` always holds the exact levels.
    """
    annotations = {LEVELS_ANNOTATION: json.dumps(trial.levels, sort_keys=True)}
    for factor, level in trial.levels.items():
        name = f"level.{factor}"[:63].rstrip("_.-")
        if _ANNOTATION_NAME.match(name):
            annotations[factor_annotation(name)] = _level_text(level)
    return annotations


def owner_reference(campaign_object: dict[str, Any]) -> dict[str, Any]:
    """An ownerReference to a Campaign object read from the API (it needs ``metadata.uid``).

    Deleting the Campaign then garbage-collects its trials' objects. ``blockOwnerDeletion`` is
    left unset: it would need ``update`` on ``campaigns/finalizers`` where the
    OwnerReferencesPermissionEnforcement admission plugin is on, a verb the controller lacks.
    """
    metadata = campaign_object["metadata"]
    return {
        "apiVersion": campaign_object.get("apiVersion", API_VERSION),
        "kind": campaign_object.get("kind", "Campaign"),
        "name": metadata["name"],
        "uid": metadata["uid"],
        "controller": True,
    }


def object_metadata(
    name: str,
    namespace: str,
    labels: dict[str, str],
    *,
    annotations: dict[str, str] | None = None,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``metadata`` of a namespaced object; an owner reference makes it garbage-collected."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    if owner is not None:
        metadata["ownerReferences"] = [dict(owner)]
    return metadata


# --- the restricted profile -----------------------------------------------------------------


def pod_security_context() -> dict[str, Any]:
    """Pod-level settings of the "restricted" Pod Security Standard, as the image's user."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level restricted settings; a read-only root, so writable paths are volumes."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
