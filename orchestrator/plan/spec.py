"""The campaign file (contract): pydantic models, loading, and the checks that name the field.

A campaign is a Kubernetes-style resource, so the same YAML goes to ``trainbed run`` and to
``kubectl apply``. Structural checks are pydantic's; the checks that need the whole spec (a
factor's dotted target exists, every level validates for that target, names are unique) run in
:func:`check_campaign` so each error names its exact field. Everything here is pure except
:func:`load_campaign`, which reads the file.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from trainbed.contract.env import API_VERSION
from trainbed.contract.errors import SpecError
from trainbed.contract.layout import BLOCK_COLUMN, DESIGN_COLUMNS
from trainbed.contract.letters import FACTOR_LETTERS
from trainbed.contract.quantity import bandwidth_bps, parse_duration, parse_quantity
from trainbed.contract.trial import TrialSettings

KIND = "Campaign"

Response = Literal["accuracy", "time", "time_to_accuracy", "energy", "throughput"]
RESPONSES: tuple[str, ...] = get_args(Response)

_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
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
    master_port: Annotated[int, Field(ge=1024, le=65535)] = Field(29500, description="DDP port.")
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


class CampaignSpec(_Strict):
    design: DesignSpec = Field(default_factory=DesignSpec)
    factors: list[Factor] = Field(
        min_length=1, description="Letters A, B, C... (skipping I) follow this order."
    )
    trial: TrialSettings = Field(default_factory=TrialSettings)
    responses: list[Response] = Field(
        default_factory=lambda: ["accuracy", "time"], description="What the analysis fits."
    )
    execution: Execution = Field(default_factory=Execution)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)


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


# --- errors --------------------------------------------------------------------------------


def _loc(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(file)"


def _first_error(err: ValidationError, prefix: tuple[Any, ...] = ()) -> SpecError:
    """The first pydantic error as a SpecError that names the field."""
    errors = err.errors(include_url=False)
    first = errors[0]
    # Drop pydantic's union-branch markers (e.g. 'str', 'int') from locations.
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in _TYPE_TAGS))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "literal_error" or (
        first["type"].endswith("_type") and isinstance(first.get("input"), str | int | float)
    ):
        message = f"{message} (got {first.get('input')!r})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SpecError(_loc(prefix + loc), message + more)


_TYPE_TAGS = {"str", "int", "float", "bool", "function-after[_dns_label(), str]"}


# --- targets and levels ----------------------------------------------------------------------


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``TargetAccuracy | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found = _model_of(arg)
            if found is not None:
                return found
    return None


def target_exists(target: str) -> str | None:
    """``None`` when the dotted path names a field of spec.trial, else why not."""
    model: type[BaseModel] | None = TrialSettings
    walked: list[str] = []
    for part in target.split("."):
        if model is None:
            return f"{'.'.join(walked)} has no fields"
        if part not in model.model_fields:
            choices = ", ".join(model.model_fields)
            where = ".".join(walked) or "spec.trial"
            return f"unknown target {target!r}: {where} has {choices}"
        walked.append(part)
        model = _model_of(model.model_fields[part].annotation)
    return None


def apply_levels(trial: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of the spec.trial dict with each dotted target set to its level."""
    result = copy.deepcopy(trial)
    for target, value in settings.items():
        node = result
        parts = target.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = copy.deepcopy(value)
    return result


def check_campaign(campaign: Campaign) -> None:
    """Cross-field checks; raises a SpecError naming the field."""
    spec = campaign.spec
    seen: dict[str, int] = {}
    targets: dict[str, int] = {}
    base = spec.trial.model_dump(mode="json")
    for i, factor in enumerate(spec.factors):
        field = f"spec.factors[{i}]"
        if factor.name in seen:
            raise SpecError(f"{field}.name", f"duplicate factor name {factor.name!r}")
        if factor.name in RESERVED_NAMES:
            raise SpecError(
                f"{field}.name", f"{factor.name!r} is a column of design.csv of its own; rename it"
            )
        seen[factor.name] = i
        reason = target_exists(factor.target)
        if reason:
            raise SpecError(f"{field}.target", reason)
        if factor.target in targets:
            other = targets[factor.target]
            raise SpecError(
                f"{field}.target", f"{factor.target!r} is already the target of factors[{other}]"
            )
        targets[factor.target] = i
        canonical: list[Any] = []
        for j, level in enumerate(factor.levels):
            try:
                settings = TrialSettings.model_validate(apply_levels(base, {factor.target: level}))
            except ValidationError as err:
                reason = _first_error(err).reason
                raise SpecError(f"{field}.levels[{j}]", f"{level!r}: {reason}") from None
            value = _get(settings.model_dump(mode="json"), factor.target)
            if factor.target in ("resources.cpu", "resources.memory"):
                value = parse_quantity(value)  # "1" and "1000m" are the same level
            elif factor.target == "resources.bandwidth" and value is not None:
                value = bandwidth_bps(value)  # "1M" and "1000k" too
            elif factor.target == "resources.latency" and value is not None:
                value = parse_duration(value)  # "1ms" and "1000us" too
            canonical.append(value)
        for j, value in enumerate(canonical):
            if value in canonical[:j]:
                raise SpecError(
                    f"{field}.levels[{j}]", f"{factor.levels[j]!r} repeats an earlier level"
                )
    if len(spec.factors) > len(FACTOR_LETTERS):
        raise SpecError(
            "spec.factors", f"at most {len(FACTOR_LETTERS)} factors (letters A-Z, skipping I)"
        )
    if spec.design.type in ("fractional", "screening"):
        multi = [f.name for f in spec.factors if len(f.levels) != 2]
        if multi:
            raise SpecError(
                "spec.design.type",
                f"a {spec.design.type} design needs two-level factors; {and_list(multi)} "
                f"{'has' if len(multi) == 1 else 'have'} more",
            )
    names = [f.name for f in spec.factors]
    for i, fold in enumerate(spec.design.foldover or []):
        if fold == "full" and "full" in names:
            raise SpecError(
                f"spec.design.foldover[{i}]",
                "'full' is ambiguous: a factor is also called full; rename that factor",
            )
        if fold != "full" and fold not in names:
            raise SpecError(
                f"spec.design.foldover[{i}]",
                f"{fold!r} is neither full nor a factor ({', '.join(names)})",
            )
    if len(set(spec.responses)) != len(spec.responses):
        raise SpecError("spec.responses", "a response is listed twice")


def and_list(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``: a list as a sentence names it."""
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


#: The resource keys that shape the network between ranks: each backend checks, before the first
#: trial, that it can enforce the ones a campaign sets.
NETWORK_KEYS = ("resources.bandwidth", "resources.latency")


def network_fields(campaign: Campaign) -> dict[str, str]:
    """Each network key some trial of the campaign sets (not null), with the field that sets it
    (``spec.factors[i].levels`` or ``spec.trial.resources.<key>``), so a refusal can name it."""
    found: dict[str, str] = {}
    targeted = set()
    for i, factor in enumerate(campaign.spec.factors):
        if factor.target in NETWORK_KEYS:
            targeted.add(factor.target)
            if any(level is not None for level in factor.levels):
                found[factor.target] = f"spec.factors[{i}].levels"
    for key in NETWORK_KEYS:
        default = getattr(campaign.spec.trial.resources, key.split(".")[1])
        if key not in targeted and default is not None:
            found[key] = f"spec.trial.{key}"
    return found


def _get(tree: dict[str, Any], target: str) -> Any:
    node: Any = tree
    for part in target.split("."):
        node = node[part]
    return node


# --- loading ----------------------------------------------------------------------------------


def parse_campaign(data: Any, source: str | None = None) -> Campaign:
    """Validate a parsed document as a Campaign; every failure is a SpecError."""
    if not isinstance(data, dict):
        raise SpecError(
            "(file)",
            "a campaign file is a YAML mapping with apiVersion, kind, metadata and spec",
            source,
        )
    api = data.get("apiVersion")
    if api != API_VERSION:
        raise SpecError("apiVersion", f"must be {API_VERSION!r}, got {api!r}", source)
    if data.get("kind") != KIND:
        raise SpecError("kind", f"must be {KIND!r}, got {data.get('kind')!r}", source)
    try:
        campaign = Campaign.model_validate(data)
    except ValidationError as err:
        first = _first_error(err)
        raise SpecError(first.field, first.reason, source) from None
    try:
        check_campaign(campaign)
    except SpecError as err:
        raise SpecError(err.field, err.reason, source) from None
    campaign._source = source
    return campaign


def load_campaign(path: Path) -> Campaign:
    """Read and validate a campaign file (the one adapter in this module)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("(file)", "no such file", source) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError("(file)", f"cannot read: {err}", source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SpecError("(file)", f"invalid YAML{where}: {problem}", source) from None
    return parse_campaign(data, source)
