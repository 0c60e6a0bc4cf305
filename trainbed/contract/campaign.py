"""The campaign file (contract): its pydantic models and JSON Schema.

A campaign is a Kubernetes-style resource, so the same YAML goes to ``trainbed run`` and to
``kubectl apply``. Structural checks are pydantic's, here; the checks that need the whole spec
(a factor's dotted target exists, every level validates for that target, names are unique) are
:mod:`trainbed.orchestrator.plan.checks`, and :mod:`trainbed.orchestrator.plan.parse` turns a
file or a mapping into a checked :class:`Campaign`, every failure a ``SpecError`` that names its
field. The models live in the contract because the results directory keeps a copy of the
campaign (``campaign.yaml``) that the analysis reads back through them, typed.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    field_validator,
    model_validator,
)

from trainbed.contract.cost import CostSpec
from trainbed.contract.env import API_VERSION, DEFAULT_MASTER_PORT
from trainbed.contract.goal import GoalSpec
from trainbed.contract.layout import BLOCK_COLUMN, DESIGN_COLUMNS
from trainbed.contract.responses import Response
from trainbed.contract.trial import TrialSettings

KIND = "Campaign"


_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
#: A Kubernetes object name that is also a label value (a LocalQueue's name in its label).
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_FACTOR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
#: Campaign names become the prefix of Job and Service names (63-character DNS labels) that
#: also carry a trial ID, so they are kept short.
MAX_NAME_LENGTH = 40
#: design.csv's own columns, which no factor may be named
RESERVED_NAMES = frozenset((*DESIGN_COLUMNS, BLOCK_COLUMN))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(BaseModel):
    """Kubernetes object metadata; only ``name`` matters, the rest rides along."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(description="Campaign name: a DNS label of at most 40 characters.")
    namespace: str | None = Field(None, description="Namespace (cluster only).")

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if len(value) > MAX_NAME_LENGTH:
            raise ValueError(
                f"must be at most {MAX_NAME_LENGTH} characters (it prefixes Job names)"
            )
        if not _NAME.match(value):
            raise ValueError("must be a DNS label: a lowercase letter, then [-a-z0-9]")
        return value


class DesignSpec(_Strict):
    """Which trials to run: a full factorial, a regular two-level fraction or a Plackett-Burman
    screening design, replicated, optionally extended by fold-overs in further blocks."""

    type: Literal["full", "fractional", "screening"] = Field(
        "full", description="full | fractional | screening (Plackett-Burman)"
    )
    generators: list[str] | None = Field(
        None,
        description='Fraction generators such as "D = ABC" (letters follow factor order, skip I).',
    )
    # StrictInt: "4" and true are refused rather than coerced to 4 and 1.
    resolution: Annotated[StrictInt, Field(ge=3, le=12)] | None = Field(
        None, description="Or: the resolution to reach with the smallest, least-aberration design."
    )
    runs: Literal[12, 20, 24] | None = Field(
        None,
        description="Screening only: runs of the Plackett-Burman design (default: the fewest).",
    )
    foldover: list[str] | None = Field(
        None,
        description=(
            "Fold-overs, each a further block: full (reverse every factor) or a factor's name "
            "(reverse that one). trainbed augment appends to this list."
        ),
    )
    replicates: Annotated[int, Field(ge=1, le=1000)] = Field(1, description="Replicates per point.")
    randomize: bool = Field(True, description="Randomise the run order (complete randomisation).")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="Seed of the run-order shuffle.")

    @model_validator(mode="after")
    def _one_way_to_fractionate(self) -> DesignSpec:
        if self.type in ("full", "screening") and (self.generators or self.resolution is not None):
            raise ValueError(f"a {self.type} design takes neither generators nor resolution")
        if self.runs is not None and self.type != "screening":
            raise ValueError("runs is for a screening design only")
        if self.foldover and self.type == "full":
            raise ValueError("a full factorial aliases nothing: there is nothing to fold over")
        if self.type == "fractional":
            if self.generators and self.resolution is not None:
                raise ValueError("give generators or resolution, not both")
            if not self.generators and self.resolution is None:
                raise ValueError("a fractional design needs generators or a resolution")
        return self


class Factor(_Strict):
    """One factor: a name, the trial field it sets, and its levels (low first)."""

    name: str = Field(description="Factor name, used in reports and as a design.csv column.")
    target: str = Field(description="Dotted path into spec.trial, e.g. resources.cpu.")
    levels: list[Any] = Field(description="Levels as written; the first is low (-1).")

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _FACTOR_NAME.match(value):
            raise ValueError("must start with a letter and hold only letters, digits and '_'")
        return value

    @field_validator("levels")
    @classmethod
    def _at_least_two(cls, value: list[Any]) -> list[Any]:
        if len(value) < 2:
            raise ValueError("a factor needs at least two levels")
        return value


class Execution(_Strict):
    """How trials are run, on either backend."""

    concurrency: Annotated[int, Field(ge=1, le=10000)] = Field(
        1, description="Trials at once. Above 1 on one machine, timing responses are confounded."
    )
    trial_timeout_s: Annotated[float, Field(gt=0)] = Field(
        3600.0, description="Wall-clock bound of one trial (activeDeadlineSeconds in the cluster)."
    )
    retries: Annotated[int, Field(ge=0, le=10)] = Field(
        0, description="Pod retries for failures other than disruptions (backoffLimit)."
    )
    cooldown_s: Annotated[float, Field(ge=0, le=3600)] | None = Field(
        None,
        description=(
            "Local backend: seconds to wait before each trial, recorded in its result as "
            "cooldown. On a GPU trial the wait ends early once its GPUs are back within 3 C of "
            "their temperature before the first trial (thermally stable, as Zeus profiles). "
            "Null: no wait."
        ),
    )


class Toleration(_Strict):
    """A Kubernetes toleration, written with the API's own keys so one can be pasted from a pod
    spec: e.g. ``{key: trainbed.io/real-node, operator: Equal, value: "true", effect:
    NoSchedule}`` lets the pods onto the test cluster's tainted real node."""

    key: str | None = Field(None, description="Taint key; empty with Exists: every taint.")
    operator: Literal["Equal", "Exists"] = Field("Equal", description="Equal | Exists")
    value: str | None = Field(None, description="Taint value (Equal only).")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="The effect tolerated; empty: every effect."
    )
    tolerationSeconds: Annotated[int, Field(ge=0)] | None = Field(  # noqa: N815 - the API's key
        None, description="NoExecute only: how long the pod stays bound after the taint."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Toleration:
        # the API server's own rules (validation.ValidateTolerations), so a bad one fails here
        if self.operator == "Exists" and self.value:
            raise ValueError("a toleration with operator Exists takes no value")
        if not self.key and self.operator != "Exists":
            raise ValueError("a toleration without a key needs operator Exists")
        if self.tolerationSeconds is not None and self.effect != "NoExecute":
            raise ValueError("tolerationSeconds is for effect NoExecute only")
        return self

    def manifest(self) -> dict[str, Any]:
        """As a pod spec's ``tolerations`` entry: the keys that are set."""
        return self.model_dump(exclude_none=True)


class KubernetesSettings(_Strict):
    """Settings that only the Kubernetes backend reads."""

    image: str = Field("trainbed:latest", description="Worker image.")
    results_pvc: str = Field("trainbed-results", description="PVC that holds results.")
    results_path: str = Field("/results", description="Where the PVC is mounted in pods.")
    master_port: Annotated[int, Field(ge=1024, le=65535)] = Field(
        DEFAULT_MASTER_PORT, description="DDP port."
    )
    cleanup: Literal["keep", "delete"] = Field(
        "keep", description="What to do with a finished trial's Job and Service."
    )
    pod_annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on worker pods."
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        description="Tolerations of every worker pod (and collect's reader pod), e.g. for a "
        "tainted node pool.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict,
        description="Node labels every worker pod (and collect's reader pod) requires.",
    )
    queue: Annotated[str, Field(max_length=63, pattern=_DNS_LABEL)] | None = Field(
        None,
        description="Kueue LocalQueue (in the campaign's namespace) that admits each trial: its "
        "Job carries the queue label and is created suspended until Kueue admits all its ranks "
        "at once. None: trials are not queued.",
    )
    priority_class: Annotated[str, Field(max_length=253)] | None = Field(
        None,
        description="Kueue WorkloadPriorityClass of each trial (queueing order and preemption); "
        "only with a queue.",
    )

    @model_validator(mode="after")
    def _priority_needs_queue(self) -> KubernetesSettings:
        if self.priority_class and not self.queue:
            raise ValueError("priority_class is a Kueue priority: it needs a queue")
        return self


class CampaignSpec(_Strict):
    design: DesignSpec = Field(default_factory=DesignSpec)
    factors: list[Factor] = Field(
        min_length=1, description="Letters A, B, C... (skipping I) follow this order."
    )
    trial: TrialSettings = Field(default_factory=TrialSettings)
    responses: list[Response] = Field(
        default_factory=lambda: ["accuracy", "time"], description="What the analysis fits."
    )
    tradeoff: list[Response] | None = Field(
        None,
        min_length=2,
        max_length=3,
        description="Two or three responses whose Pareto set of configurations the report "
        "draws (times and energy minimised, accuracy and throughput maximised); default: a "
        "time against an energy response, where both were measured.",
    )

    @field_validator("tradeoff")
    @classmethod
    def _distinct_tradeoff(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"tradeoff: each response once, got {value}")
        return value

    execution: Execution = Field(default_factory=Execution)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    goal: GoalSpec | None = Field(
        None, description='What to recommend, e.g. "min time s.t. accuracy >= 0.9".'
    )
    cost: CostSpec | None = Field(None, description="Prices that make the cost response.")


class Campaign(BaseModel):
    """The Campaign resource (``trainbed.io/v1alpha1``)."""

    model_config = ConfigDict(extra="forbid")

    apiVersion: Literal[API_VERSION] = Field(API_VERSION)  # type: ignore[valid-type]
    kind: Literal["Campaign"] = Field(KIND)
    metadata: Metadata
    spec: CampaignSpec
    status: dict[str, Any] | None = Field(None, description="Written by the controller.")

    #: The file it was read from, for error messages (set by :func:`parse_campaign`).
    _source: str | None = PrivateAttr(None)

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def source(self) -> str | None:
        """The campaign file's path, when it came from one: errors found later (the design
        engine's) name it as the schema's do."""
        return self._source


def campaign_json_schema() -> dict[str, Any]:
    """The JSON Schema of the campaign file, for editors and the CRD."""
    schema = Campaign.model_json_schema()
    schema["$id"] = "https://trainbed.io/schemas/campaign-v1alpha1.json"
    schema["title"] = "trainbed Campaign"
    return schema
