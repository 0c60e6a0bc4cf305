"""Names the parts agree on at run time: ``TRAINBED_*`` environment variables, the
torchrun-style rank variables, and the Kubernetes label and annotation keys. Defined here once.

The executors set the environment (local processes and pods alike) and the worker reads it; the
manifests write the labels and the controller, the CLI and ``kubectl get pods -l`` select by
them.
"""

from __future__ import annotations

# --- what the executors set and the worker reads ---------------------------------------------

#: JSON: how the executor enforced the trial's limits (recorded as ``result.enforcement``).
ENFORCEMENT = "TRAINBED_ENFORCEMENT"
#: Seconds a rank waits for the others at the rendezvous before it gives up, saying so.
RDZV_TIMEOUT = "TRAINBED_RDZV_TIMEOUT"
#: Seconds a collective may take before a dead peer ends it in an error, not a hang.
COLLECTIVE_TIMEOUT = "TRAINBED_COLLECTIVE_TIMEOUT"
#: Where datasets are downloaded and cached (a PVC in the cluster).
DATA = "TRAINBED_DATA"
#: Dataset mirrors (tests serve small files from a local HTTP server).
MNIST_MIRROR = "TRAINBED_MNIST_MIRROR"
FASHION_MNIST_MIRROR = "TRAINBED_FASHION_MNIST_MIRROR"
CIFAR10_URL = "TRAINBED_CIFAR10_URL"
#: The Kubernetes node a pod runs on (the downward API's ``spec.nodeName``), recorded with the
#: rank's noise record so the analysis can block on node; unset outside a cluster.
NODE_NAME = "TRAINBED_NODE_NAME"
#: Samples per second of the GPU power sampler during training (default 10; "0" turns it off,
#: and ``result.power`` is then null with ``power_source`` saying so).
POWER_SAMPLE_HZ = "TRAINBED_POWER_SAMPLE_HZ"

# --- what a person or a deployment sets ------------------------------------------------------

#: Force a local enforcement mode (cgroup-v2, cgroup-v1, fallback).
ENFORCEMENT_MODE = "TRAINBED_ENFORCEMENT_MODE"
#: "1": no live progress bars (logs, tests).
NO_PROGRESS = "TRAINBED_NO_PROGRESS"
#: The results volume's mount path inside the controller's pod.
RESULTS_PATH = "TRAINBED_RESULTS_PATH"

# --- thread pools ------------------------------------------------------------------------

#: The thread-pool sizes, set from the CPU limit
#: (:func:`trainbed.contract.quantity.threads_for_cpu`): the executor decides, the worker applies.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

# --- Kubernetes labels and annotations --------------------------------------------------------

GROUP = "trainbed.io"
#: The Campaign resource's version and plural: its REST path is /apis/GROUP/VERSION/.../PLURAL.
VERSION = "v1alpha1"
PLURAL = "campaigns"
#: The Campaign resource's apiVersion (the campaign file's first line).
API_VERSION = f"{GROUP}/{VERSION}"
CAMPAIGN_LABEL = f"{GROUP}/campaign"
TRIAL_LABEL = f"{GROUP}/trial"
REPLICATE_LABEL = f"{GROUP}/replicate"
#: Annotation: the trial's factor levels as JSON; ``trainbed.io/<factor>`` holds each one.
LEVELS_ANNOTATION = f"{GROUP}/levels"
#: Annotations of campaign.yaml: the versions and the seeds a campaign ran with.
VERSIONS_ANNOTATION = f"{GROUP}/versions"
SEEDS_ANNOTATION = f"{GROUP}/seeds"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "trainbed"
#: The selector of every object trainbed manages.
MANAGED_SELECTOR = f"{MANAGED_BY}={MANAGER}"


def thread_variables(threads: int) -> dict[str, str]:
    """The environment that sizes a rank's thread pools."""
    return {name: str(threads) for name in THREAD_VARIABLES}


def factor_annotation(factor: str) -> str:
    """The annotation key of one factor's level on a trial's objects."""
    return f"{GROUP}/{factor}"


def campaign_selector(campaign: str, trial: str | None = None) -> str:
    """The label selector of a campaign's (or one trial's) objects, as kubectl takes it."""
    selector = f"{CAMPAIGN_LABEL}={campaign}"
    return f"{selector},{TRIAL_LABEL}={trial}" if trial else selector
