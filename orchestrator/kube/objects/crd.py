"""The Campaign CustomResourceDefinition, generated from the same pydantic models as the file.

``trainbed schema`` (JSON Schema for editors) and this CRD both come from
:class:`~trainbed.contract.campaign.CampaignSpec`, so a field added to the spec reaches the API
server without a hand-edited YAML. Kubernetes wants a *structural* OpenAPI v3.0 schema, which
pydantic's JSON Schema (2020-12) is not; :func:`structural_schema` converts it:

- ``$ref``/``$defs`` are inlined (the API server resolves no references);
- ``anyOf [X, null]`` becomes ``X`` with ``nullable: true``;
- a union of scalars becomes ``x-kubernetes-int-or-string`` when it is exactly string|integer,
  otherwise a node that keeps any value (``x-kubernetes-preserve-unknown-fields``), because a
  quantity such as ``cpu: 1.5`` must stay accepted as it is locally;
- ``items: {}`` (a list of anything, e.g. factor levels) and ``dict[str, Any]`` keep unknown
  values instead of being pruned;
- numeric ``exclusiveMinimum: x`` becomes ``minimum: x, exclusiveMinimum: true`` (OpenAPI 3.0);
- ``const`` becomes a one-value ``enum``; ``title``, ``default: null`` and
  ``additionalProperties: false`` are dropped (the API server rejects the last; unknown fields
  are pruned, and ``kubectl`` rejects them with its default strict field validation).

The chart's ``crds/campaigns.trainbed.io.yaml`` is this module's output (``scripts/gen-crd``), and
a unit test keeps the two equal. Run as ``python -m trainbed.orchestrator.kube.objects.crd`` to
print it.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from trainbed.contract.campaign import KIND, CampaignSpec
from trainbed.contract.env import GROUP, MANAGER, NAME_LABEL, PART_OF_LABEL, PLURAL, VERSION

CRD_NAME = f"{PLURAL}.{GROUP}"

_SCALARS = {"string", "integer", "number", "boolean"}
#: JSON Schema keywords with the same meaning in Kubernetes' OpenAPI v3.0 subset.
_KEEP = {
    "description",
    "type",
    "enum",
    "default",
    "required",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "format",
    "multipleOf",
    "minProperties",
    "maxProperties",
}
_PRESERVE = "x-kubernetes-preserve-unknown-fields"
_INT_OR_STRING = "x-kubernetes-int-or-string"


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``node`` with a ``$ref`` replaced by its definition (sibling keys win)."""
    if "$ref" not in node:
        return node
    name = node["$ref"].removeprefix("#/$defs/")
    assert name in defs, f"unresolvable $ref {node['$ref']}"
    merged = {**_resolve(defs[name], defs), **{k: v for k, v in node.items() if k != "$ref"}}
    return merged


def _union(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Fold an ``anyOf`` into one structural node (nullable, int-or-string, or keep-any)."""
    branches = [_resolve(b, defs) for b in node["anyOf"]]
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    nullable = any(b.get("type") == "null" for b in branches)
    branches = [b for b in branches if b.get("type") != "null"]
    if len(branches) == 1:
        folded = {**branches[0], **rest}
    else:
        types = {b.get("type") for b in branches}
        assert types <= _SCALARS, f"unsupported union {node}"
        if types == {"string", "integer"}:
            folded = {**rest, _INT_OR_STRING: True}
        else:
            folded = {**rest, _PRESERVE: True}
    if nullable:
        folded["nullable"] = True
    return folded


def _convert(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    node = _resolve(node, defs)
    if "anyOf" in node:
        node = _union(node, defs)
    if "allOf" in node and len(node["allOf"]) == 1:  # pydantic's wrapper for a described $ref
        node = {
            **_resolve(node["allOf"][0], defs),
            **{k: v for k, v in node.items() if k != "allOf"},
        }
    unsupported = {"oneOf", "allOf", "not", "prefixItems", "$ref", "anyOf"} & set(node)
    assert not unsupported, f"no structural form for {sorted(unsupported)} in {node}"
    out: dict[str, Any] = {k: v for k, v in node.items() if k in _KEEP}
    if "default" in out and out["default"] is None:
        del out["default"]
    if "const" in node:
        out["enum"] = [node["const"]]
        out.setdefault("type", _json_type(node["const"]))
    for bound in ("Minimum", "Maximum"):
        exclusive = node.get(f"exclusive{bound}")
        if exclusive is not None:
            out[bound.lower()] = exclusive
            out[f"exclusive{bound}"] = True
    for flag in ("nullable", _INT_OR_STRING, _PRESERVE):
        if node.get(flag):
            out[flag] = True
    if "properties" in node:
        out["properties"] = {k: _convert(v, defs) for k, v in node["properties"].items()}
    additional = node.get("additionalProperties")
    if isinstance(additional, dict) and additional:
        out["additionalProperties"] = _convert(additional, defs)
    elif additional is True or (isinstance(additional, dict) and not additional):
        out[_PRESERVE] = True  # dict[str, Any]: keep whatever is there
    elif out.get("type") == "object" and "properties" not in node and additional is None:
        out[_PRESERVE] = True  # a bare object: nothing to prune against
    if out.get("type") == "array":
        items = node.get("items", {})
        out["items"] = _convert(items, defs) if items else {_PRESERVE: True}
    if "type" not in out and not (out.get(_INT_OR_STRING) or out.get(_PRESERVE)):
        out[_PRESERVE] = True  # Any: the only typeless node a structural schema allows
    return out


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    return "string"


def structural_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """Kubernetes' structural OpenAPI v3.0 schema for a pydantic JSON Schema (see module doc)."""
    return _convert(json_schema, json_schema.get("$defs", {}))


def campaign_openapi_schema() -> dict[str, Any]:
    """``openAPIV3Schema`` of the Campaign: the generated spec, a free-form status."""
    spec = structural_schema(CampaignSpec.model_json_schema())
    spec["description"] = "The campaign: design, factors, trial defaults, responses, execution."
    return {
        "type": "object",
        "description": "A trainbed campaign: a factorial experiment whose trials run as Jobs.",
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": {
                "type": "object",
                "description": (
                    "Written by the controller, bounded in size: phase, counts, conditions "
                    "(Complete, Blocked), the campaign's timestamps, the oldest trials in "
                    "flight and the latest failures. Per-trial records are in the ConfigMaps "
                    "that status.records selects."
                ),
                _PRESERVE: True,
            },
        },
    }


def _column(name: str, type_: str, path: str, description: str) -> dict[str, str]:
    return {"name": name, "type": type_, "jsonPath": path, "description": description}


def campaign_crd() -> dict[str, Any]:
    """The ``campaigns.trainbed.io`` CRD (v1alpha1, namespaced, with a status subresource)."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {
                NAME_LABEL: MANAGER,
                PART_OF_LABEL: MANAGER,
            },
        },
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": KIND.lower(),
                "shortNames": ["camp"],
                "categories": ["trainbed"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": [
                        _column("Phase", "string", ".status.phase", "Campaign phase."),
                        _column("Done", "integer", ".status.done", "Trials finished."),
                        _column("Failed", "integer", ".status.failed", "Trials that failed."),
                        _column("Queued", "integer", ".status.queued", "Trials Kueue holds."),
                        _column("Running", "integer", ".status.running", "Trials admitted."),
                        _column("Total", "integer", ".status.total", "Trials in the design."),
                        _column("Blocked", "string", ".status.blocked", "What stops trials."),
                        _column("Age", "date", ".metadata.creationTimestamp", "Age."),
                    ],
                    "schema": {"openAPIV3Schema": campaign_openapi_schema()},
                }
            ],
        },
    }


def campaign_crd_yaml() -> str:
    """The CRD as the chart ships it (``charts/trainbed/crds/campaigns.trainbed.io.yaml``)."""
    header = (
        "# Generated by scripts/gen-crd from trainbed.orchestrator.kube.objects.crd: do not edit.\n"
    )
    return header + yaml.safe_dump(campaign_crd(), sort_keys=False, width=100)


if __name__ == "__main__":
    sys.stdout.write(campaign_crd_yaml())
