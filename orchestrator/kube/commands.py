"""``trainbed submit | status | logs | collect`` and ``run --backend kubernetes``.

Thin adapters over :mod:`trainbed.orchestrator.kube.api`: the Campaign resource is the interface,
so everything here also works with plain ``kubectl``. Namespaces resolve as kubectl's do
(:func:`~trainbed.orchestrator.kube.api.resolve_namespace`): the flag, else the file's
``metadata.namespace``, else the kubeconfig context's.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from trainbed.contract.env import campaign_selector
from trainbed.contract.errors import ClusterError, UserError
from trainbed.orchestrator.kube.api import KubeApi, resolve_namespace
from trainbed.orchestrator.kube.campaign_status import FINAL_PHASES, CampaignStatus
from trainbed.orchestrator.kube.collected import save_logs, settle
from trainbed.orchestrator.kube.network_limits import refuse_unenforceable
from trainbed.orchestrator.kube.progress import CampaignProgress
from trainbed.orchestrator.kube.records import RecordStore
from trainbed.orchestrator.outcome import TrialObservation
from trainbed.orchestrator.plan.spec import (
    Campaign,
    KubernetesSettings,
    load_campaign,
    parse_campaign,
)
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

#: ``status --watch`` reads the Campaign this often.
WATCH_S = 1.0
#: A campaign no controller has reconciled this long after its creation is reported.
NO_CONTROLLER_S = 30.0
#: A live campaign whose heartbeat is older than this has lost its controller.
STALE_HEARTBEAT_S = 120.0


def campaign_object(campaign: Campaign, namespace: str) -> dict[str, Any]:
    data = campaign.model_dump(mode="json", exclude_none=True, exclude={"status"})
    data["metadata"] = {"name": campaign.name, "namespace": namespace}
    return data


def submit(
    file: Path, *, namespace: str | None, console: Console, api: KubeApi | None = None
) -> None:
    campaign = load_campaign(file)
    refuse_unenforceable(campaign, str(file))
    namespace = resolve_namespace(namespace, campaign.metadata.namespace)
    api = api or KubeApi.from_environment()
    api.apply_campaign(campaign_object(campaign, namespace))
    console.print(f"campaign.trainbed.io/{campaign.name} submitted to {namespace}")
    console.print(
        f"watch: kubectl get campaigns -n {namespace} -w; "
        f"kubectl get pods -n {namespace} -l {campaign_selector(campaign.name)}"
    )


def diagnosis(obj: dict[str, Any], now: float | None = None) -> str:
    """What the Campaign object itself says is wrong, beyond its Blocked condition: no
    controller has picked it up, or the one that did stopped looking. Empty when all is well."""
    now = time.time() if now is None else now
    meta = obj.get("metadata") or {}
    status = CampaignStatus.from_storage(obj.get("status"))
    if status.phase in FINAL_PHASES:
        return ""
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
            "ago: is it still running? (kubectl get pods -l app.kubernetes.io/component=controller)"
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
        f"({status.succeeded} succeeded, {status.failed} failed), {status.running} in flight, "
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
    legacy = ((obj.get("status") or {}).get("trials") or {}).get(trial)
    if legacy:
        return {"trial": trial, "recorded": bool(legacy.get("status")), **legacy}
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
    phase = "InFlight" if status.running > len(status.in_flight) else "Pending"
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


def logs(
    name: str,
    trial: str,
    *,
    namespace: str,
    rank: int,
    console: Console,
    api: KubeApi | None = None,
) -> None:
    api = api or KubeApi.from_environment()
    pods = api.list_pods(namespace, campaign_selector(name, trial))
    ranked = [
        p
        for p in pods
        if (p["metadata"].get("annotations") or {}).get("batch.kubernetes.io/job-completion-index")
        == str(rank)
    ]
    if not ranked:
        raise UserError(f"no pod of rank {rank} for trial {trial} of campaign {name}")
    newest = max(ranked, key=lambda p: p["metadata"]["creationTimestamp"])
    console.out(api.pod_log(namespace, newest["metadata"]["name"]), highlight=False)


def collect(
    name: str,
    *,
    out: Path,
    namespace: str,
    console: Console,
    api: KubeApi | None = None,
    image: str | None = None,
    timeout_s: float = 120,
    seen: dict[str, TrialObservation] | None = None,
) -> Path:
    """Copy ``<results_path>/<name>`` from the PVC via a short-lived reader pod and exec+tar,
    then complete it (:func:`_complete`); ``seen`` holds the observations of the trials that
    ``run`` recorded from here."""
    from trainbed.orchestrator.kube.manifests import placement
    from trainbed.orchestrator.kube.results_volume import reader_pod

    api = api or KubeApi.from_environment()
    obj = api.get_campaign(namespace, name)
    if obj is None:
        raise UserError(f"no Campaign {namespace}/{name}")
    try:
        k8s = KubernetesSettings.model_validate((obj.get("spec") or {}).get("kubernetes") or {})
    except ValidationError as err:
        raise UserError(f"Campaign {namespace}/{name}: spec.kubernetes: {err}") from None
    path = k8s.results_path
    pod = reader_pod(
        name,
        k8s.results_pvc,
        path,
        namespace,
        image=image or k8s.image,
        placement=placement(k8s),
    )
    pod_name = pod["metadata"]["name"]
    api.create(pod)
    try:
        deadline = time.time() + timeout_s
        while True:
            phase = api.pod_phase(namespace, pod_name) or "Pending"
            if phase == "Running":
                break
            if phase in ("Failed", "Succeeded") or time.time() > deadline:
                raise ClusterError(f"reader pod {namespace}/{pod_name} did not run (phase {phase})")
            time.sleep(1)
        buffer = io.BytesIO()
        for chunk in api.exec_stream(namespace, pod_name, ["tar", "-C", path, "-cf", "-", name]):
            buffer.write(chunk if isinstance(chunk, bytes) else chunk.encode("latin-1"))
        buffer.seek(0)
        out.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=buffer, mode="r:") as archive:
            archive.extractall(out, filter="data")
    finally:
        api.delete("Pod", namespace, pod_name)
    _complete(obj, out, api=api, namespace=namespace, seen=seen or {}, console=console)
    console.print(f"collected {namespace}/{name} into {out / name}")
    return out / name


def _complete(
    obj: dict[str, Any],
    out: Path,
    *,
    api: KubeApi,
    namespace: str,
    seen: dict[str, TrialObservation],
    console: Console,
) -> None:
    """What the PVC does not hold (:mod:`~trainbed.orchestrator.kube.collected`): the campaign's
    spec and design where no in-cluster controller wrote them, each trial's spec and rank logs,
    and each recorded outcome over a worker's ``result.json`` that disagrees with it."""
    name = obj["metadata"]["name"]
    campaign = parse_campaign(
        {k: v for k, v in obj.items() if k != "status"}, source=f"Campaign {name}"
    )
    planned = plan_campaign(campaign)
    results = ResultsDir.for_campaign(out.resolve(), campaign)
    if not results.layout.campaign_file.exists():
        results.initialise(campaign, planned.design, planned.trials, resume=True)
    pods = api.list_pods(namespace, campaign_selector(name))
    logs = save_logs(api, namespace, pods, results)
    records = RecordStore(api, namespace, name, chunks={}).load()
    specs = {t.trial_id: t for t in planned.trials}
    rewritten = settle(results, specs, seen, records)
    console.print(
        f"{logs} rank logs saved; {rewritten} result.json files set to the recorded outcome",
        highlight=False,
    )


def run_on_cluster(
    file: Path,
    *,
    namespace: str | None,
    out: Path,
    console: Console,
    api: KubeApi | None = None,
    collect_results: bool = True,
) -> Path | None:
    """``trainbed run --backend kubernetes``: submit, drive it from here with live progress
    (and what blocks it), then collect."""
    from trainbed.orchestrator.kube.controller import Controller

    campaign = load_campaign(file)
    refuse_unenforceable(campaign, str(file))
    namespace = resolve_namespace(namespace, campaign.metadata.namespace)
    api = api or KubeApi.from_environment()
    # campaign.yaml and design.csv here, before anything runs (a different campaign in --out is
    # refused now). The pods write to the PVC, which this machine cannot read: the controller
    # below records from the API alone, and collect settles each result with its observation.
    planned = plan_campaign(campaign)
    local = ResultsDir.for_campaign(out.resolve(), campaign)
    local.initialise(campaign, planned.design, planned.trials, resume=True)
    api.apply_campaign(campaign_object(campaign, namespace))
    console.print(
        f"[bold]{campaign.name}[/]: submitted to namespace {namespace}; driving it from here",
        highlight=False,
    )
    controller = Controller(api, namespace, only=campaign.name).start()
    failure: list[BaseException] = []

    def drive() -> None:
        try:
            controller.run(until_done=True)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            failure.append(err)

    thread = threading.Thread(target=drive, name="controller", daemon=True)
    try:
        thread.start()
        with CampaignProgress(console, campaign.name) as bar:
            while thread.is_alive():
                runtime = controller.runtimes.get(campaign.name)
                if runtime is not None:
                    bar.update(runtime.view)
                thread.join(0.5)
            runtime = controller.runtimes.get(campaign.name)
            if runtime is not None:
                bar.update(runtime.view)
    finally:
        controller.stop()
        thread.join(10)
    if failure:
        raise failure[0]
    if campaign.name in controller.invalid:
        raise UserError(
            f"Campaign {namespace}/{campaign.name}: {controller.invalid[campaign.name][1]}"
        )
    obj = api.get_campaign(namespace, campaign.name) or {"metadata": {"name": campaign.name}}
    summary(obj, console)
    if not collect_results:
        return None
    seen = dict(runtime.executor.seen) if runtime is not None else {}
    try:
        return collect(
            campaign.name, out=out, namespace=namespace, console=console, api=api, seen=seen
        )
    except ClusterError as err:
        console.print(
            f"[yellow]could not collect results:[/] {err}; "
            f"run: trainbed collect {campaign.name} --out {out}"
        )
        return None
