"""What the Kubernetes backend can enforce of a campaign's network keys, decided before submit.

``resources.bandwidth`` becomes the pods' ``kubernetes.io/{ingress,egress}-bandwidth``
annotations (:func:`trainbed.orchestrator.kube.objects.manifests.bandwidth_annotations`), which the
node's CNI enforces. ``resources.latency`` cannot be: adding delay needs ``tc netem`` with
NET_ADMIN inside the pod, and worker pods run under the restricted Pod Security Standard (all
capabilities dropped). A campaign that sets it is refused here, before anything is created, so
it never runs undelayed while its levels say otherwise. ``resources.gpu_power_limit`` and
``resources.gpu_clock`` are refused for the same reason: NVML's setters need a privileged process
on the node (root, or CAP_SYS_ADMIN), which restricted pods cannot be. A Zeus-style privileged node
agent would be the path (docs/kubernetes.md). Pure.
"""

from __future__ import annotations

from trainbed.contract.campaign import Campaign
from trainbed.contract.errors import SpecError
from trainbed.orchestrator.plan.checks import gpu_tuning_fields, network_fields

LATENCY_REFUSAL = (
    "resources.latency cannot be enforced on Kubernetes: adding delay needs tc netem (NET_ADMIN) "
    "in the pod, which restricted Pod Security forbids; run it with --backend local"
)

GPU_TUNING_REFUSAL = (
    "cannot be enforced on Kubernetes: setting a GPU's power limit or locked clocks needs a "
    "privileged process on the node, which restricted Pod Security forbids (docs/kubernetes.md: "
    "a privileged node agent is the path); run it with --backend local"
)


def refuse_unenforceable(campaign: Campaign, source: str | None = None) -> None:
    """Raise a SpecError naming the field that sets ``resources.latency``, or a GPU tuning key
    (``resources.gpu_power_limit``, ``resources.gpu_clock``), if any does."""
    field = network_fields(campaign).get("resources.latency")
    if field is not None:
        raise SpecError(field, LATENCY_REFUSAL, source)
    for key, field in gpu_tuning_fields(campaign).items():
        raise SpecError(field, f"{key} {GPU_TUNING_REFUSAL}", source)
