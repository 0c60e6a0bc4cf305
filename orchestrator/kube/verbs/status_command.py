"""``trainbed status NAME``: a Campaign's counts, what blocks it, its trials in flight and its
latest failures; ``--trial ID`` for one trial's record, ``--watch`` for a live progress bar.

It reads the Campaign object (bounded: counts and windows, see
:mod:`~trainbed.orchestrator.kube.objects.campaign_status`) and, for
one trial, the records ConfigMaps, so it works from any machine with a kubeconfig, and says
when no controller is looking after the campaign.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from trainbed.contract.env import COMPONENT_LABEL, CONTROLLER_COMPONENT
from trainbed.contract.errors import UserError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.record_store import RecordStore
from trainbed.orchestrator.kube.objects.campaign_status import FINAL_PHASES, CampaignStatus
from trainbed.orchestrator.kube.verbs.progress import CampaignProgress
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign

#: ``status --watch`` reads the Campaign this often.
WATCH_S = 1.0
#: A campaign no controller has reconciled this long after its creation is reported.
NO_CONTROLLER_S = 30.0
#: A live campaign whose heartbeat is older than this has lost its controller.
STALE_HEARTBEAT_S = 120.0


def diagnosis(obj: dict[str, Any], now: float | None = None) -> str:
    """What the Campaign object itself says is wrong, beyond its Blocked condition: the
    controller stopped on a permanent API error (Stalled), no controller has picked it up, or the
    one that did stopped looking. Empty when all is well."""
    now = time.time() if now is None else now
    meta = obj.get("metadata") or {}
    status = CampaignStatus.from_storage(obj.get("status"))
    if status.phase in FINAL_PHASES:
        return ""
    stalled = status.condition("Stalled")
    if stalled is not None and stalled.status == "True":
        return f"the controller stopped on an API error no retry fixes: {stalled.message}"
    age = now - _ts(meta.get("creationTimestamp"), now)
    generation = int(meta.get("generation") or 0)
    if status.observed_generation is None and age > NO_CONTROLLER_S:
        return (
            f"no controller has reconciled this campaign in {age:.0f} s: install the chart "
            "(helm install trainbed charts/trainbed) or run `trainbed controller` in its namespace"
        )
    if status.heartbeat and now - _ts(status.heartbeat, now) > STALE_HEARTBEAT_S:
        return (
            f"the controller last looked at this campaign {now - _ts(status.heartbeat, now):.0f} s "
            "ago: is it still running? "
            f"(kubectl get pods -l {COMPONENT_LABEL}={CONTROLLER_COMPONENT})"
        )
    if status.observed_generation is not None and status.observed_generation < generation:
        return f"the controller has not seen generation {generation} of the spec yet"
    return ""


def _ts(value: str | None, default: float) -> float:
    if not value:
        return default
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def summary(obj: dict[str, Any], console: Console) -> None:
    """The counts, what blocks, the trials in flight and the latest failures."""
    name = obj["metadata"]["name"]
    namespace = obj["metadata"].get("namespace", "")
    status = CampaignStatus.from_storage(obj.get("status"))
    console.print(
        f"[bold]{name}[/]: {status.phase}, {status.done}/{status.total or '?'} recorded "
        f"({status.succeeded} succeeded, {status.failed} failed), "
        + (f"{status.queued} queued (Kueue), " if status.queued else "")
        + f"{status.running} in flight, "
        f"{status.pending} pending"
        + (f"; started {status.started_at}" if status.started_at else "")
        + (f", completed {status.completed_at}" if status.completed_at else ""),
        highlight=False,
    )
    valid = status.condition("Valid")
    if valid is not None and valid.status == "False":
        console.print(f"[bold red]invalid:[/] {valid.message}", highlight=False, soft_wrap=True)
    said = diagnosis(obj)
    if said:
        console.print(f"[bold yellow]{said}[/]", highlight=False, soft_wrap=True)
    blocked = status.blocked
    if blocked is not None:
        console.print(
            f"[bold yellow]blocked:[/] {blocked.message}", highlight=False, soft_wrap=True
        )
    if status.in_flight:
        phases = ", ".join(f"{n} {phase}" for phase, n in status.phases)
        table = Table(
            title=f"in flight: {phases} (the {len(status.in_flight)} oldest)",
            title_justify="left",
        )
        for column in ("trial", "phase", "since", "reason"):
            table.add_column(column)
        for entry in status.in_flight:
            table.add_row(entry.trial, entry.phase, entry.since, entry.reason)
        console.print(table)
    if status.failures:
        table = Table(
            title=f"failures: the latest {len(status.failures)} of {status.failed}",
            title_justify="left",
        )
        for column in ("trial", "status", "finished", "reason"):
            table.add_column(column)
        for failure in reversed(status.failures):
            table.add_row(
                failure.trial, f"[red]{failure.status}[/]", failure.finished, failure.reason
            )
        console.print(table)
    if status.records:
        console.print(
            f"every trial's record: trainbed status {name} --trial ID, or "
            f"kubectl get configmaps -n {namespace} -l {status.records} -o yaml",
            highlight=False,
        )


def trial_record(
    obj: dict[str, Any], trial: str, *, api: KubeApi, namespace: str
) -> dict[str, Any]:
    """One trial's record: from the records ConfigMaps once recorded, else from the status's
    in-flight window, else ``pending`` when the plan has it. An unknown ID is the user's error."""
    name = obj["metadata"]["name"]
    store = RecordStore(api, namespace, name, chunks={})
    recorded = store.load()
    if trial in recorded:
        return {"trial": trial, "recorded": True, **recorded[trial]}
    status = CampaignStatus.from_storage(obj.get("status"))
    for entry in status.in_flight:
        if entry.trial == trial:
            return {"trial": trial, "recorded": False, **entry.for_storage()}
    try:
        campaign = parse_campaign(
            {k: v for k, v in obj.items() if k != "status"}, source=f"Campaign {name}"
        )
        planned = {t.trial_id: t for t in plan_campaign(campaign).trials}
    except UserError:
        planned = {}
    if trial not in planned:
        raise UserError(f"campaign {namespace}/{name} has no trial {trial!r}")
    spec = planned[trial]
    in_flight = status.running + status.queued
    phase = "InFlight" if in_flight > len(status.in_flight) else "Pending"
    return {"trial": trial, "recorded": False, "phase": phase, "levels": spec.levels}


def status(
    name: str,
    *,
    namespace: str,
    watch: bool,
    as_json: bool,
    console: Console,
    trial: str | None = None,
    api: KubeApi | None = None,
) -> None:
    api = api or KubeApi.from_environment()
    obj = api.get_campaign(namespace, name)
    if obj is None:
        raise UserError(f"no Campaign {namespace}/{name}")
    if trial is not None:
        record = trial_record(obj, trial, api=api, namespace=namespace)
        if as_json:
            console.print_json(json.dumps(record))
            return
        table = Table(title=f"{name} / {trial}", title_justify="left", show_header=False)
        for key, value in record.items():
            table.add_row(key, value if isinstance(value, str) else json.dumps(value))
        console.print(table)
        return
    if as_json and not watch:
        console.print_json(json.dumps(obj.get("status") or {}))
        return
    if watch:
        with CampaignProgress(console, name) as bar:
            while True:
                status_value = CampaignStatus.from_storage(obj.get("status"))
                if as_json:
                    console.out(json.dumps(obj.get("status") or {}), highlight=False)
                else:
                    bar.update(status_value, diagnosis(obj))
                if status_value.phase in FINAL_PHASES:
                    break
                time.sleep(WATCH_S)
                obj = api.get_campaign(namespace, name)
                if obj is None:
                    raise UserError(f"Campaign {namespace}/{name} was deleted")
    if not as_json:
        summary(obj, console)
