"""``trainbed submit | logs | collect`` and ``run --backend kubernetes``; ``status`` is
:mod:`.status_command`.

Thin adapters over :mod:`trainbed.orchestrator.kube.adapter.api`: the Campaign resource is the
interface, so everything here also works with plain ``kubectl``. Namespaces resolve as kubectl's
do (:func:`~trainbed.orchestrator.kube.adapter.namespaces.resolve_namespace`): the flag, else the
file's ``metadata.namespace``, else the kubeconfig context's.
"""

from __future__ import annotations

import io
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from trainbed.contract.campaign import Campaign, KubernetesSettings
from trainbed.contract.env import INDEX_ANNOTATION, campaign_selector
from trainbed.contract.errors import ClusterError, UserError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.adapter.namespaces import resolve_namespace
from trainbed.orchestrator.kube.control.record_store import RecordStore
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus
from trainbed.orchestrator.kube.objects.network_limits import refuse_unenforceable
from trainbed.orchestrator.kube.verbs.collected import save_logs, settle
from trainbed.orchestrator.kube.verbs.progress import CampaignProgress
from trainbed.orchestrator.kube.verbs.status_command import summary
from trainbed.orchestrator.outcome import TrialObservation
from trainbed.orchestrator.plan.parse import load_campaign, parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir


def queue_setting(queue: str | None) -> dict[str, str] | None:
    """``--queue`` as a ``spec.kubernetes`` override (None: the file's own setting stands)."""
    return None if queue is None else {"queue": queue}


def campaign_object(campaign: Campaign, namespace: str) -> dict[str, Any]:
    data = campaign.model_dump(mode="json", exclude_none=True, exclude={"status"})
    data["metadata"] = {"name": campaign.name, "namespace": namespace}
    return data


def submit(
    file: Path,
    *,
    namespace: str | None,
    console: Console,
    queue: str | None = None,
    api: KubeApi | None = None,
) -> None:
    campaign = load_campaign(file, kubernetes=queue_setting(queue))
    refuse_unenforceable(campaign, str(file))
    namespace = resolve_namespace(namespace, campaign.metadata.namespace)
    api = api or KubeApi.from_environment()
    api.apply_campaign(campaign_object(campaign, namespace))
    console.print(f"campaign.trainbed.io/{campaign.name} submitted to {namespace}")
    console.print(
        f"watch: kubectl get campaigns -n {namespace} -w; "
        f"kubectl get pods -n {namespace} -l {campaign_selector(campaign.name)}"
    )


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
        if (p["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION) == str(rank)
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
    from trainbed.orchestrator.kube.objects.manifests import placement
    from trainbed.orchestrator.kube.objects.results_volume import reader_pod

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
        try:
            with tarfile.open(fileobj=buffer, mode="r:") as archive:
                archive.extractall(out, filter="data")
        except tarfile.TarError as err:  # e.g. a kwok node, which runs no container to exec
            raise ClusterError(
                f"reader pod {namespace}/{pod_name} sent {buffer.getbuffer().nbytes} bytes that "
                f"are no tar archive of {path}/{name} ({err}): did it run on a real node?"
            ) from None
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
    """What the PVC does not hold (:mod:`~trainbed.orchestrator.kube.verbs.collected`): the
    campaign's
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
    queue: str | None = None,
    api: KubeApi | None = None,
    collect_results: bool = True,
) -> Path | None:
    """``trainbed run --backend kubernetes``: submit, drive it from here with live progress
    (and what blocks it), then collect."""
    from trainbed.orchestrator.kube.control.controller import Controller

    campaign = load_campaign(file, kubernetes=queue_setting(queue))
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
            following = ""
            while thread.is_alive():
                runtime = controller.runtimes.get(campaign.name)
                followed = controller.followed()
                if runtime is not None:
                    if following:
                        console.print(
                            f"{campaign.name}: took it over from {following}, which stopped "
                            "renewing its lease; driving it from here",
                            highlight=False,
                        )
                        following = ""
                    bar.update(runtime.view)
                elif followed is not None:  # another controller drives it: show its progress
                    holder, obj = followed
                    following = holder or "?"
                    bar.update(
                        CampaignStatus.from_storage(obj.get("status")),
                        f"driven by the controller that holds its lease ({holder or '?'}); "
                        "following it, and taking over if it stops",
                    )
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
    final = CampaignStatus.from_storage(obj.get("status"))
    if final.phase == "Invalid":  # found so by the controller that holds it
        valid = final.condition("Valid")
        why = valid.message if valid is not None else ""
        raise UserError(f"Campaign {namespace}/{campaign.name}: {why or 'invalid'}")
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
