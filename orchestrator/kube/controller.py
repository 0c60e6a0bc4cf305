"""The Campaign controller: the same driver as the local backend, with a Kubernetes executor.

It watches Campaign resources in one namespace (and trainbed's Jobs and pods through shared
informers), and for each campaign runs one :class:`~trainbed.orchestrator.driver.Driver` step
whenever something changes. It keeps no state of its own that the cluster does not hold: after a
restart, recorded trials come back from each Campaign's status and running ones from their Jobs,
and creating an existing trial is a no-op, so no Job is ever duplicated.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainbed.contract.env import RESULTS_PATH
from trainbed.contract.errors import SpecError, UserError
from trainbed.orchestrator.driver import Driver
from trainbed.orchestrator.kube.api import KubeApi
from trainbed.orchestrator.kube.executor import ClusterCaches, KubernetesExecutor
from trainbed.orchestrator.kube.informer import Informer
from trainbed.orchestrator.kube.manifests import owner_reference
from trainbed.orchestrator.plan.spec import Campaign, parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)
RESYNC_S = 30.0
#: Status writes are batched: at most one merge patch per campaign per SYNC_S.
SYNC_S = 1.0


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class CampaignRuntime:
    generation: int
    campaign: Campaign
    driver: Driver
    executor: KubernetesExecutor
    total: int
    last_status: dict[str, Any] | None = None
    last_sync: float = 0.0
    sent_live: dict[str, dict[str, Any]] = field(default_factory=dict)


class Controller:
    """Reconciles every Campaign in a namespace (or only ``only``)."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        *,
        only: str | None = None,
        results_root: Path | None = None,
    ) -> None:
        self.api = api
        #: The results PVC's mount point (TRAINBED_RESULTS_PATH in the chart), or a local --out.
        self.results_root = results_root
        self.namespace = namespace
        self.only = only
        self.caches = ClusterCaches(api, namespace)
        self.campaigns = Informer(
            api.lister("Campaign", namespace), lambda x: x, self.caches.changes, name="campaigns"
        )
        self.runtimes: dict[str, CampaignRuntime] = {}
        self.invalid: dict[str, int] = {}
        self.stopping = threading.Event()

    def start(self) -> Controller:
        self.caches.start()
        self.campaigns.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.caches.changes.bump()
        for runtime in self.runtimes.values():
            runtime.executor.close()
        self.campaigns.stop()
        self.caches.stop()

    def _runtime(self, obj: dict[str, Any]) -> CampaignRuntime | None:
        name = obj["metadata"]["name"]
        generation = int(obj["metadata"].get("generation") or 0)
        runtime = self.runtimes.get(name)
        if runtime is not None and runtime.generation == generation:
            return runtime
        if self.invalid.get(name) == generation:
            return None  # already reported; wait for a new spec
        try:
            campaign = parse_campaign(
                {k: v for k, v in obj.items() if k != "status"}, source=f"Campaign {name}"
            )
            planned = plan_campaign(campaign)
        except SpecError as err:
            self._invalid(name, generation, "InvalidSpec", str(err))
            return None
        design, trials = planned.design, planned.trials
        results = None
        if self.results_root is not None:
            results = ResultsDir.for_campaign(self.results_root, campaign)
            try:
                results.initialise(campaign, design, trials, resume=True)
            except UserError as err:
                self._invalid(name, generation, "ResultsConflict", str(err))
                return None
        recorded = ((obj.get("status") or {}).get("trials")) or {}
        executor = KubernetesExecutor(
            campaign,
            self.api,
            self.caches,
            namespace=self.namespace,
            owner=owner_reference(obj),
            trials=trials,
            recorded=recorded,
            results=results,
        )
        driver = Driver(
            trials=trials,
            executor=executor,
            concurrency=campaign.spec.execution.concurrency,
            timeout_s=None,
        )
        if runtime is not None:
            runtime.executor.close()
        runtime = CampaignRuntime(generation, campaign, driver, executor, total=len(trials))
        self.runtimes[name] = runtime
        return runtime

    def _invalid(self, name: str, generation: int, reason: str, message: str) -> None:
        self.invalid[name] = generation
        self.api.patch_campaign_status(
            self.namespace,
            name,
            {
                "phase": "Invalid",
                "conditions": [
                    {
                        "type": "Valid",
                        "status": "False",
                        "reason": reason,
                        "message": message,
                        "lastTransitionTime": _now(),
                    }
                ],
            },
        )

    def reconcile_once(self) -> bool:
        """One pass over every campaign; True when all of them are done."""
        all_done = True
        campaigns = self.campaigns.snapshot()
        for name in list(self.runtimes):
            if name not in campaigns:
                self.runtimes.pop(name).executor.close()
        for name, obj in campaigns.items():
            if self.only and name != self.only:
                continue
            runtime = self._runtime(obj)
            if runtime is None:
                continue
            done = runtime.driver.step()
            self._sync_status(runtime, done)
            all_done = all_done and done
        return all_done

    def _sync_status(self, runtime: CampaignRuntime, done: bool) -> None:
        """Write progress into the Campaign's status, batched: at most every SYNC_S, except
        when the campaign is done. Recorded trials go in the same merge patch."""
        executor = runtime.executor
        now = time.monotonic()
        if not done and now - runtime.last_sync < SYNC_S:
            return
        summary = executor.summary(runtime.total)
        live = {tid: entry for tid, entry in executor.live.items()}
        status: dict[str, Any] = dict(summary)
        status["observedGeneration"] = runtime.generation
        changed_live = {t: e for t, e in live.items() if runtime.sent_live.get(t) != e}
        if status == runtime.last_status and not changed_live and not executor.unflushed:
            return
        status["trials"] = {**changed_live, **executor.unflushed}
        previous = runtime.last_status or {}
        if previous.get("phase") != status["phase"]:
            status["conditions"] = [
                {
                    "type": "Complete" if done else "Running",
                    "status": "True",
                    "reason": "AllTrialsRecorded" if done else "TrialsInProgress",
                    "message": f"{summary['done']}/{summary['total']} trials recorded, "
                    f"{summary['failed']} not succeeded",
                    "lastTransitionTime": _now(),
                }
            ]
        self.api.patch_campaign_status(self.namespace, runtime.campaign.name, status)
        executor.flushed()
        runtime.sent_live.update(changed_live)
        runtime.last_status = {k: v for k, v in status.items() if k not in ("conditions", "trials")}
        runtime.last_sync = now

    def run(self, *, until_done: bool = False) -> None:
        seen = -1
        while not self.stopping.is_set():
            seen = self.caches.changes.count
            done = self.reconcile_once()
            if until_done and done and (self.only is None or self.only in self.runtimes):
                return
            pending = any(r.executor.unflushed or r.executor.live for r in self.runtimes.values())
            self.caches.changes.wait(seen, SYNC_S if pending else RESYNC_S)


def run_controller(namespace: str = "default", kubeconfig: str | None = None) -> None:
    """``trainbed controller``: reconcile Campaigns until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = os.environ.get(RESULTS_PATH)
    controller = Controller(
        KubeApi.from_environment(kubeconfig), namespace, results_root=Path(root) if root else None
    ).start()
    try:
        controller.run()
    finally:
        controller.stop()
