"""``trainbed submit | status | logs | collect`` and ``run --backend kubernetes``.

Thin adapters over :mod:`trainbed.orchestrator.kube.api`: the Campaign resource is the interface,
so everything here also works with plain ``kubectl``.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from trainbed.contract.env import campaign_selector
from trainbed.contract.errors import ClusterError, UserError
from trainbed.orchestrator.kube.api import KubeApi
from trainbed.orchestrator.plan.spec import Campaign, load_campaign


def campaign_object(campaign: Campaign, namespace: str) -> dict[str, Any]:
    data = campaign.model_dump(mode="json", exclude_none=True, exclude={"status"})
    data["metadata"] = {"name": campaign.name, "namespace": namespace}
    return data


def submit(file: Path, *, namespace: str, console: Console, api: KubeApi | None = None) -> None:
    campaign = load_campaign(file)
    api = api or KubeApi.from_environment()
    api.apply_campaign(campaign_object(campaign, namespace))
    console.print(f"campaign.trainbed.io/{campaign.name} submitted to {namespace}")
    console.print(
        f"watch: kubectl get campaigns -n {namespace} -w; "
        f"kubectl get pods -n {namespace} -l {campaign_selector(campaign.name)}"
    )


def _status_table(obj: dict[str, Any]) -> Table:
    status = obj.get("status") or {}
    name = obj["metadata"]["name"]
    table = Table(
        title=f"{name}: {status.get('phase', 'Pending')} "
        f"{status.get('done', 0)}/{status.get('total', '?')} done, "
        f"{status.get('failed', 0)} failed",
        title_justify="left",
    )
    for column in (
        "trial",
        "phase",
        "status",
        "created",
        "scheduled",
        "started",
        "finished",
        "reason",
    ):
        table.add_column(column)
    for trial_id, entry in sorted((status.get("trials") or {}).items()):
        table.add_row(
            trial_id,
            *(
                str(entry.get(k) or "")
                for k in (
                    "phase",
                    "status",
                    "created",
                    "scheduled",
                    "started",
                    "finished",
                    "reason",
                )
            ),
        )
    return table


def status(
    name: str,
    *,
    namespace: str,
    watch: bool,
    as_json: bool,
    console: Console,
    api: KubeApi | None = None,
) -> None:
    api = api or KubeApi.from_environment()
    while True:
        obj = api.get_campaign(namespace, name)
        if obj is None:
            raise UserError(f"no Campaign {namespace}/{name}")
        if as_json:
            console.print_json(json.dumps(obj.get("status") or {}))
        else:
            console.print(_status_table(obj))
        if not watch or (obj.get("status") or {}).get("phase") in ("Completed", "Invalid"):
            return
        time.sleep(2)


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
) -> Path:
    """Copy ``<results_path>/<name>`` from the PVC via a short-lived reader pod and exec+tar."""
    from trainbed.orchestrator.kube.results_volume import reader_pod

    api = api or KubeApi.from_environment()
    obj = api.get_campaign(namespace, name)
    if obj is None:
        raise UserError(f"no Campaign {namespace}/{name}")
    k8s = (obj.get("spec") or {}).get("kubernetes") or {}
    pvc = k8s.get("results_pvc", "trainbed-results")
    path = k8s.get("results_path", "/results")
    pod = reader_pod(name, pvc, path, namespace, image=image or k8s.get("image", "trainbed:latest"))
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
    console.print(f"collected {namespace}/{name} into {out / name}")
    return out / name


def run_on_cluster(
    file: Path,
    *,
    namespace: str,
    out: Path,
    console: Console,
    api: KubeApi | None = None,
    collect_results: bool = True,
) -> Path | None:
    """``trainbed run --backend kubernetes``: submit, drive it from here, then collect."""
    from trainbed.orchestrator.kube.controller import Controller

    campaign = load_campaign(file)
    api = api or KubeApi.from_environment()
    api.apply_campaign(campaign_object(campaign, namespace))
    controller = Controller(api, namespace, only=campaign.name, results_root=out).start()
    try:
        controller.run(until_done=True)
    finally:
        controller.stop()
    obj = api.get_campaign(namespace, campaign.name) or {}
    console.print(_status_table(obj))
    if not collect_results:
        return None
    try:
        return collect(campaign.name, out=out, namespace=namespace, console=console, api=api)
    except ClusterError as err:
        console.print(
            f"[yellow]could not collect results:[/] {err}; "
            f"run: trainbed collect {campaign.name} --out {out}"
        )
        return None
