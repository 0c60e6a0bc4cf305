"""The Campaign controller: the same driver as the local backend, with a Kubernetes executor.

It watches Campaign resources in one namespace (and trainbed's Jobs and pods through shared
informers), and for each campaign runs one :class:`~trainbed.orchestrator.driver.Driver` step
whenever something changes. It keeps no state of its own that the cluster does not hold: after a
restart, recorded trials come back from each campaign's records ConfigMaps and running ones from
their Jobs, and creating an existing trial is a no-op, so no Job is ever duplicated.

Once a second at most, it makes new records durable, then (and only then) lets the executor
clean up their trials, then writes the Campaign's bounded status
(:class:`~trainbed.orchestrator.kube.campaign_status.CampaignStatus`) when its value changed. A
campaign recorded by the older format (every trial in ``status.trials``) is migrated once: its
recorded trials are written to the records and the field is removed in the same status write.

Only the holder of a campaign's Lease (:mod:`~trainbed.orchestrator.kube.lease`) reconciles it,
so a second controller in the namespace waits instead of writing beside the first, and takes
over when the first stops or dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trainbed.contract.env import RESULTS_PATH
from trainbed.contract.errors import ClusterError, SpecError, UserError
from trainbed.orchestrator.driver import Driver
from trainbed.orchestrator.kube.api import KubeApi
from trainbed.orchestrator.kube.blockers import pvc_blocker, summarize
from trainbed.orchestrator.kube.campaign_status import (
    FINAL_PHASES,
    CampaignStatus,
    Condition,
    progress_conditions,
    window,
    with_conditions,
)
from trainbed.orchestrator.kube.executor import ClusterCaches, KubernetesExecutor
from trainbed.orchestrator.kube.informer import Informer
from trainbed.orchestrator.kube.lease import LeaseKeeper
from trainbed.orchestrator.kube.metadata import owner_reference
from trainbed.orchestrator.kube.network_limits import refuse_unenforceable
from trainbed.orchestrator.kube.records import RecordStore, chunk_of, records_selector
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.spec import Campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)
RESYNC_S = 30.0
#: Records and status are written at most once per SYNC_S per campaign.
SYNC_S = 1.0
#: A live campaign's status says the controller looked at it at most this long ago.
HEARTBEAT_S = 30.0
#: How often the results PVC is read while a campaign runs.
PVC_CHECK_S = 10.0
#: Passes are at least this far apart, so a burst of watch events costs one pass, and at most
#: a quarter of the controller's time goes to passes (a pass reads every trial of the plan).
MIN_PASS_S = 0.05


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _age(stamp: str) -> float:
    if not stamp:
        return float("inf")
    return time.time() - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@dataclass
class CampaignRuntime:
    generation: int
    campaign: Campaign
    driver: Driver
    executor: KubernetesExecutor
    store: RecordStore
    total: int
    #: the status last written (what the API holds)
    written: CampaignStatus
    #: the status last computed (what ``run`` shows, written or not)
    view: CampaignStatus
    #: the old format's ``status.trials`` is still there and is removed with the next write
    migrate: bool = False
    last_sync: float = 0.0
    last_pvc_check: float = float("-inf")
    pvc: Any = None


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
            api.lister("Campaign", namespace), self.caches.changes, name="campaigns"
        )
        self.runtimes: dict[str, CampaignRuntime] = {}
        #: name -> (generation, message) of a spec that cannot run
        self.invalid: dict[str, tuple[int, str]] = {}
        self.stopping = threading.Event()
        self.leases = LeaseKeeper(api, namespace, self._wanted, self.caches.changes.bump)

    def _wanted(self) -> dict[str, dict[str, Any]]:
        """The campaigns this controller would reconcile if it held their leases."""
        found = self.campaigns.snapshot()
        return {n: o for n, o in found.items() if self.only is None or n == self.only}

    def start(self) -> Controller:
        self.caches.start()
        self.campaigns.start()
        self.leases.start()
        return self

    def interrupt(self) -> None:
        """Ask :meth:`run` to return after its pass (safe from a signal handler)."""
        self.stopping.set()
        self.caches.changes.bump()

    def stop(self) -> None:
        self.interrupt()
        self.leases.stop()  # released, so the next controller need not wait for them to lapse
        for runtime in self.runtimes.values():
            runtime.executor.close()
        self.campaigns.stop()
        self.caches.stop()

    def followed(self) -> tuple[str, dict[str, Any]] | None:
        """(holder, Campaign object) of ``only`` while another controller holds it."""
        if self.only is None or self.leases.holds(self.only):
            return None
        obj = self.campaigns.get(self.only)
        return None if obj is None else (self.leases.others.get(self.only, ""), obj)

    def _runtime(self, obj: dict[str, Any]) -> CampaignRuntime | None:
        name = obj["metadata"]["name"]
        generation = int(obj["metadata"].get("generation") or 0)
        runtime = self.runtimes.get(name)
        if runtime is not None and runtime.generation == generation:
            return runtime
        if self.invalid.get(name, (None,))[0] == generation:
            return None  # already reported; wait for a new spec
        try:
            campaign = parse_campaign(
                {k: v for k, v in obj.items() if k != "status"}, source=f"Campaign {name}"
            )
            refuse_unenforceable(campaign, f"Campaign {name}")  # kubectl apply skips submit's
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
        owner = owner_reference(obj)
        store = RecordStore(
            self.api,
            self.namespace,
            name,
            chunks=chunk_of(t.trial_id for t in trials),
            owner=owner,
        )
        recorded = store.load()
        stored = obj.get("status") or {}
        old = {t: e for t, e in (stored.get("trials") or {}).items() if (e or {}).get("status")}
        migrated = {t: e for t, e in old.items() if t not in recorded}
        executor = KubernetesExecutor(
            campaign,
            self.api,
            self.caches,
            namespace=self.namespace,
            owner=owner,
            trials=trials,
            recorded={**recorded, **migrated},
            results=results,
        )
        executor.unflushed.update(migrated)  # written to the records with the first sync
        driver = Driver(
            trials=trials,
            executor=executor,
            concurrency=campaign.spec.execution.concurrency,
            timeout_s=None,
        )
        if runtime is not None:
            runtime.executor.close()
        previous = CampaignStatus.from_storage(stored)
        runtime = CampaignRuntime(
            generation,
            campaign,
            driver,
            executor,
            store,
            total=len(trials),
            written=previous,
            view=previous,
            migrate="trials" in stored,
        )
        if migrated or runtime.migrate:
            log.info("%s: migrating %d recorded trials from status.trials", name, len(migrated))
        self.runtimes[name] = runtime
        self.invalid.pop(name, None)
        return runtime

    def _invalid(self, name: str, generation: int, reason: str, message: str) -> None:
        self.invalid[name] = (generation, message)
        valid = Condition("Valid", "False", reason, message, _now())
        self.api.patch_campaign_status(
            self.namespace,
            name,
            {
                "phase": "Invalid",
                "observedGeneration": generation,
                "conditions": [valid.for_storage()],
            },
        )

    def reconcile_once(self) -> bool:
        """One pass over every campaign; True when all of them are done."""
        all_done = True
        campaigns = self.campaigns.snapshot()
        for name in list(self.runtimes):
            if name not in campaigns or not self.leases.holds(name):
                self.runtimes.pop(name).executor.close()  # gone, or another controller's now
        for name, obj in campaigns.items():
            if self.only and name != self.only:
                continue
            if not self.leases.holds(name):
                all_done = False
                continue
            runtime = self._runtime(obj)
            if runtime is None:
                continue
            done = runtime.driver.step()
            self._sync(runtime, done)
            all_done = all_done and done
        return all_done

    def _sync(self, runtime: CampaignRuntime, done: bool) -> None:
        """Make new records durable, then clean up their trials, then write the status if its
        value changed; at most once per SYNC_S, and at once when the campaign is done."""
        executor = runtime.executor
        now = time.monotonic()
        if not done and now - runtime.last_sync < SYNC_S:
            return
        runtime.last_sync = now
        if executor.unflushed:
            batch = dict(executor.unflushed)
            try:
                runtime.store.write(batch)
            except ClusterError as err:
                log.warning("%s: writing records failed: %s", runtime.campaign.name, err)
                return  # the records stay unflushed and their Jobs stay; the next sync retries
            executor.flushed(list(batch))
        if not done and now - runtime.last_pvc_check >= PVC_CHECK_S:
            runtime.last_pvc_check = now
            k8s = runtime.campaign.spec.kubernetes
            try:
                pvc = self.api.get_object("PersistentVolumeClaim", self.namespace, k8s.results_pvc)
                runtime.pvc = pvc_blocker(pvc, k8s.results_pvc, self.namespace)
            except ClusterError as err:
                log.warning("%s: reading the results PVC failed: %s", runtime.campaign.name, err)
        runtime.view = self._status(runtime, done)
        if runtime.view == runtime.written and not runtime.migrate:
            return
        body = runtime.view.for_storage()
        if runtime.migrate:
            body["trials"] = None  # the old format's per-trial map, now in the records
        try:
            self.api.patch_campaign_status(self.namespace, runtime.campaign.name, body)
        except ClusterError as err:
            log.warning("%s: writing the status failed: %s", runtime.campaign.name, err)
            return
        runtime.written = runtime.view
        runtime.migrate = False

    def _status(self, runtime: CampaignRuntime, done: bool) -> CampaignStatus:
        """The campaign's status now, from the executor's state: a pure function of it,
        plus the previous value's timestamps."""
        executor = runtime.executor
        previous = runtime.written
        stamp = _now()
        flight = executor.in_flight()
        found = executor.blockers(time.time())
        if runtime.pvc is not None:
            found.insert(0, ("", runtime.pvc))
        running = len(flight)
        started = previous.started_at or (stamp if running or executor.done else "")
        complete = executor.done >= runtime.total
        heartbeat = previous.heartbeat
        if not complete and _age(heartbeat) >= HEARTBEAT_S:
            heartbeat = stamp
        wanted = progress_conditions(
            done=executor.done,
            total=runtime.total,
            failed=executor.failed,
            blockers=summarize(found),
        )
        phase = "Running" if running or executor.done else "Pending"
        return CampaignStatus(
            phase="Completed" if complete else phase,
            observed_generation=runtime.generation,
            total=runtime.total,
            done=executor.done,
            failed=executor.failed,
            running=running,
            phases=tuple(sorted(executor.phase_counts(flight).items())),
            started_at=started,
            completed_at=previous.completed_at or (stamp if complete else ""),
            heartbeat=heartbeat,
            in_flight=window(flight),
            failures=tuple(executor.failures),
            conditions=with_conditions(previous.conditions, wanted, stamp),
            records=records_selector(runtime.campaign.name),
        )

    def _durable(self) -> bool:
        """Every reconciled campaign's completion is written: records and status."""
        if self.only is not None and self.only not in self.runtimes:
            return False
        return all(
            r.written.phase == "Completed" and not r.executor.unflushed
            for r in self.runtimes.values()
        )

    def run(self, *, until_done: bool = False) -> None:
        """Reconcile until stopped; with ``until_done``, until ``only`` is done or invalid."""
        while not self.stopping.is_set():
            seen = self.caches.changes.count
            began = time.monotonic()
            done = self.reconcile_once()
            if until_done and self.only is not None and self.only in self.invalid:
                return
            if until_done and done and self._durable():
                return
            followed = self.followed() if until_done else None
            if followed is not None and _phase(followed[1]) in FINAL_PHASES:
                return  # finished by the controller that holds it
            spent = time.monotonic() - began
            self.stopping.wait(max(MIN_PASS_S, 3 * spent) - spent)
            pending = any(
                r.executor.unflushed or r.executor.live or r.view != r.written
                for r in self.runtimes.values()
            )
            self.caches.changes.wait(seen, SYNC_S if pending else RESYNC_S)


def _phase(obj: dict[str, Any]) -> str:
    return CampaignStatus.from_storage(obj.get("status")).phase


def run_controller(namespace: str, kubeconfig: str | None = None) -> None:
    """``trainbed controller``: reconcile Campaigns until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = os.environ.get(RESULTS_PATH)
    controller = Controller(
        KubeApi.from_environment(kubeconfig), namespace, results_root=Path(root) if root else None
    ).start()

    # a pod being deleted: run returns, and the stop below releases the leases
    signal.signal(signal.SIGTERM, lambda signum, frame: controller.interrupt())
    try:
        controller.run()
    finally:
        controller.stop()
