"""A campaign file or mapping in, a checked :class:`Campaign` out, or one ``SpecError``.

The schema (:mod:`.spec`) and the whole-spec checks (:mod:`.checks`) run in that order, and
the first failure is raised with the file's path, so the CLI prints one line and exits 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from trainbed.contract.campaign import KIND, Campaign
from trainbed.contract.env import API_VERSION
from trainbed.contract.errors import SpecError
from trainbed.orchestrator.plan.checks import check_campaign, spec_error


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
        first = spec_error(err)
        raise SpecError(first.field, first.reason, source) from None
    try:
        check_campaign(campaign)
    except SpecError as err:
        raise SpecError(err.field, err.reason, source) from None
    campaign._source = source
    return campaign


def load_campaign(path: Path, *, kubernetes: dict[str, Any] | None = None) -> Campaign:
    """Read and validate a campaign file (the one adapter in the plan package).

    ``kubernetes``: command-line settings (``--queue``) that replace those of
    ``spec.kubernetes`` before validation, so a bad one is named like a bad line of the file.
    """
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
    if kubernetes and isinstance(data, dict) and isinstance(data.get("spec"), dict):
        settings = data["spec"].get("kubernetes")
        settings = settings if isinstance(settings, dict) else {}
        data["spec"]["kubernetes"] = {**settings, **kubernetes}
    return parse_campaign(data, source)
