"""A collected results directory made whole: what ``collect`` copied from the PVC, plus what
only the API knew.

``trainbed run --backend kubernetes`` drives the campaign from the user's machine, which cannot
see the results PVC: its controller records each trial from the Job and its pods alone. Once
``collect`` has copied the workers' files out, :func:`settle` writes into each trial's directory
what the in-cluster controller would have written on the volume:

- ``result.json``: the worker's, corrected by what the API saw, through the same
  :func:`~trainbed.orchestrator.outcome.outcome` as everywhere (an OOM kill, a deadline, a rank
  that failed after rank 0 wrote ``succeeded``), or the API's alone where the worker wrote none;
  for a trial recorded by an earlier run (no observation in memory), the status and reason of
  its durable record win over a worker's that disagrees;
- ``trial.json``: the trial spec as run (in the cluster it lives in the trial's ConfigMap);
- ``logs/rank-<r>.log``: each rank's container log, where its pod still exists.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from trainbed.contract.env import INDEX_ANNOTATION, TRIAL_LABEL
from trainbed.contract.errors import ClusterError
from trainbed.contract.layout import TrialLayout
from trainbed.contract.records import Result, amend_result
from trainbed.contract.trial import TrialSpec
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.outcome import TrialObservation, outcome
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)


def settled_result(
    spec: TrialSpec,
    worker: Result | None,
    seen: TrialObservation | None,
    record: dict[str, Any] | None,
) -> Result | None:
    """The result a trial's directory should hold, or None where the worker's stands (or
    nothing is known). Pure."""
    if seen is not None:
        return outcome(spec, worker, dataclasses.replace(seen, results_visible=True))
    if not record or not record.get("status"):
        return None
    # Kueue's timestamps are the controller's alone: the worker never sees its own queueing
    queueing = {
        field: record[key]
        for field, key in (
            ("queued_at", "queued"),
            ("admitted_at", "admitted"),
            ("admitted_beside", "beside"),
        )
        if record.get(key) and (worker is None or getattr(worker, field) is None)
    }
    if worker is not None and worker.status == record["status"]:
        return worker.model_copy(update=queueing) if queueing else None
    base = worker or Result(
        status=record["status"],
        campaign=spec.campaign,
        trial_id=spec.trial_id,
        world_size=spec.workload.parallelism,
        started_at=record.get("started"),
        finished_at=record.get("finished"),
        enforcement={"mode": "kubernetes"},
    )
    update = {
        "status": record["status"],
        "reason": record.get("reason", ""),
        "campaign": base.campaign or spec.campaign,
        "trial_id": base.trial_id or spec.trial_id,
        **queueing,
    }
    return base.model_copy(update=update)


def settle(
    results: ResultsDir,
    specs: dict[str, TrialSpec],
    seen: dict[str, TrialObservation],
    records: dict[str, dict[str, Any]],
) -> int:
    """Write each trial's spec, and its settled result where it differs; returns how many
    results were rewritten."""
    rewritten = 0
    for trial_id, spec in specs.items():
        directory = results.trial_dir(trial_id)
        if trial_id not in seen and trial_id not in records and not directory.exists():
            continue  # never started
        results.write_trial(spec)
        # a torn or foreign file is not the worker's word: amend_result reads it as None
        result = amend_result(
            directory,
            lambda worker, spec=spec, trial_id=trial_id: settled_result(
                spec, worker, seen.get(trial_id), records.get(trial_id)
            ),
        )
        if result is not None:
            rewritten += 1
    return rewritten


def save_logs(api: KubeApi, namespace: str, pods: list[dict[str, Any]], results: ResultsDir) -> int:
    """Each rank's container log into ``logs/rank-<r>.log`` (the newest pod of each rank);
    returns how many were saved. A log the API no longer has is skipped, with a warning."""
    newest: dict[tuple[str, int], dict[str, Any]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        trial = (meta.get("labels") or {}).get(TRIAL_LABEL)
        index = (meta.get("annotations") or {}).get(INDEX_ANNOTATION)
        if not trial or index is None or not str(index).isdigit():
            continue
        key = (trial, int(index))
        if (
            key not in newest
            or meta["creationTimestamp"] > (newest[key]["metadata"]["creationTimestamp"])
        ):
            newest[key] = pod
    saved = 0
    for (trial, rank), pod in sorted(newest.items()):
        try:
            text = api.pod_log(namespace, pod["metadata"]["name"])
        except ClusterError as err:
            log.warning("no log of %s: %s", pod["metadata"]["name"], err)
            continue
        path = TrialLayout(results.trial_dir(trial)).log_file(rank)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        saved += 1
    return saved
