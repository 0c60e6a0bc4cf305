"""Names the parts agree on at run time: ``TRAINBED_*`` environment variables and their
defaults, the torchrun-style rank variables, and the Kubernetes label and annotation keys.
Defined here once.

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
#: ``RDZV_TIMEOUT``'s value where nothing else sets it, the executors' and the worker's alike:
#: in a cluster rank 0's DNS name comes up after the other pods start, and a busy node may take
#: minutes to import torch in one of them; locally the executor kills a trial's other ranks
#: soon after one dies, so the longer wait costs nothing there.
RDZV_TIMEOUT_S = 300
#: Seconds a collective may take before a dead peer ends it in an error, not a hang.
COLLECTIVE_TIMEOUT = "TRAINBED_COLLECTIVE_TIMEOUT"
#: ``COLLECTIVE_TIMEOUT``'s value where nothing else sets it: long enough for the longest
#: legitimate wait at a collective (under local SGD rank 0 evaluates the whole held-out set
#: alone, under its CPU limit, while the others wait at the broadcast), short enough that a
#: rank whose peer's pod was deleted fails in minutes rather than at the Job's deadline.
COLLECTIVE_TIMEOUT_S = 120
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

# --- the torchrun-style rank variables (the worker reads them, the executors set them) -------

RANK = "RANK"
WORLD_SIZE = "WORLD_SIZE"
LOCAL_RANK = "LOCAL_RANK"
MASTER_ADDR = "MASTER_ADDR"
MASTER_PORT = "MASTER_PORT"
#: The DDP port where nothing sets one (torchrun's default; ``spec.kubernetes.master_port``).
DEFAULT_MASTER_PORT = 29500
#: Kubeflow's PyTorchJob names its variables ``PET_<name>``; a local rank never inherits them.
PET_PREFIX = "PET_"
#: An Indexed Job's pod has no RANK of its own: its completion index stands in for it.
JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
#: Where each rank value is read from, first set wins: torchrun's name, then the stand-ins.
WORLD_SIZE_NAMES = (WORLD_SIZE, f"{PET_PREFIX}{WORLD_SIZE}", f"{PET_PREFIX}NNODES")
RANK_NAMES = (RANK, f"{PET_PREFIX}{RANK}", f"{PET_PREFIX}NODE_RANK", JOB_COMPLETION_INDEX)
LOCAL_RANK_NAMES = (LOCAL_RANK, f"{PET_PREFIX}{LOCAL_RANK}")
MASTER_ADDR_NAMES = (MASTER_ADDR, f"{PET_PREFIX}{MASTER_ADDR}")
MASTER_PORT_NAMES = (MASTER_PORT, f"{PET_PREFIX}{MASTER_PORT}")

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
#: Kubernetes' recommended labels (app.kubernetes.io/*) that trainbed's objects carry.
NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
PART_OF_LABEL = "app.kubernetes.io/part-of"
MANAGED_BY = "app.kubernetes.io/managed-by"
#: The value of ``NAME_LABEL``, ``PART_OF_LABEL`` and ``MANAGED_BY``.
MANAGER = "trainbed"
#: ``COMPONENT_LABEL`` values: a trial's objects, the results PVC, collect's reader pod, the
#: records ConfigMaps, and the controller (the Helm chart sets that one).
WORKER_COMPONENT = "worker"
RESULTS_COMPONENT = "results"
READER_COMPONENT = "reader"
RECORDS_COMPONENT = "records"
CONTROLLER_COMPONENT = "controller"
#: The annotation an Indexed Job's pods carry their completion index in (the DDP rank).
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
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
