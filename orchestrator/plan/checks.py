"""What a campaign's schema cannot say: the checks that need the whole spec.

A factor's dotted target must name a field of ``spec.trial``, each of its levels must validate
there, and no two levels may be the same quantity written twice (``1`` and ``1000m``); names and
targets are unique; fractional and screening designs take two-level factors; fold-overs name
factors. Each failure is a ``SpecError`` naming the exact field (``spec.factors[2].levels[1]``),
so the user finds the line. Also here: :func:`network_fields`, where a campaign sets the network
keys each backend must be able to enforce. Pure.
"""

from __future__ import annotations

import copy
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from trainbed.contract.campaign import RESERVED_NAMES, Campaign
from trainbed.contract.errors import SpecError
from trainbed.contract.letters import FACTOR_LETTERS
from trainbed.contract.quantity import bandwidth_bps, parse_duration, parse_quantity
from trainbed.contract.trial import TrialSettings


def _loc(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(file)"


def spec_error(err: ValidationError, prefix: tuple[Any, ...] = ()) -> SpecError:
    """The first pydantic error as a SpecError that names the field."""
    errors = err.errors(include_url=False)
    first = errors[0]
    # Drop pydantic's union-branch markers (e.g. 'str', 'int') from locations.
    loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p in TYPE_TAGS))
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown field"
    elif first["type"] == "literal_error" or (
        first["type"].endswith("_type") and isinstance(first.get("input"), str | int | float)
    ):
        message = f"{message} (got {first.get('input')!r})"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SpecError(_loc(prefix + loc), message + more)


#: pydantic's union-branch markers in an error's location, which no user wrote.
TYPE_TAGS = {"str", "int", "float", "bool", "function-after[_dns_label(), str]"}


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
                reason = spec_error(err).reason
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
    return resource_fields(campaign, NETWORK_KEYS)


#: The resource keys that tune the trial's GPUs (power limit, locked SM clock): settable only by
#: a privileged process on the GPU's host.
GPU_TUNING_KEYS = ("resources.gpu_power_limit", "resources.gpu_clock")


def gpu_tuning_fields(campaign: Campaign) -> dict[str, str]:
    """Each GPU tuning key some trial sets, with the field that sets it (as network_fields)."""
    return resource_fields(campaign, GPU_TUNING_KEYS)


def resource_fields(campaign: Campaign, keys: tuple[str, ...]) -> dict[str, str]:
    """Each of ``keys`` (``resources.<key>``) that some trial sets (not null), with the field
    that sets it: a factor's levels, or the trial defaults where no factor targets it."""
    found: dict[str, str] = {}
    targeted = set()
    for i, factor in enumerate(campaign.spec.factors):
        if factor.target in keys:
            targeted.add(factor.target)
            if any(level is not None for level in factor.levels):
                found[factor.target] = f"spec.factors[{i}].levels"
    for key in keys:
        default = getattr(campaign.spec.trial.resources, key.split(".")[1])
        if key not in targeted and default is not None:
            found[key] = f"spec.trial.{key}"
    return found


def _get(tree: dict[str, Any], target: str) -> Any:
    node: Any = tree
    for part in target.split("."):
        node = node[part]
    return node
