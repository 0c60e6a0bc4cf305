"""The Campaign controller: the same driver as the local backend, with a Kubernetes executor.

It watches Campaign resources in one namespace (and trainbed's Jobs and pods through shared
informers), and for each campaign runs one :class:`~trainbed.orchestrator.driver.Driver` step
whenever something changes. It keeps no state of its own that the cluster does not hold: after a
restart, recorded trials come back from each campaign's records ConfigMaps and running ones from
their Jobs, and creating an existing trial is a no-op, so no Job is ever duplicated.

Once a second at most, its status writer
(:mod:`~trainbed.orchestrator.kube.control.status_writer`) makes new records durable, then (and
only then) lets the executor clean up their trials, then writes the Campaign's bounded status
(:class:`~trainbed.orchestrator.kube.objects.campaign_status.CampaignStatus`) when its value
changed; beside the loop, so that a slow write never holds a freed slot.

Only the holder of a campaign's Lease (:mod:`~trainbed.orchestrator.kube.control.lease`)
reconciles it, so a second controller in the namespace waits instead of writing beside the first,
and takes over when the first stops or dies.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from trainbed.contract.env import RESULTS_PATH
from trainbed.contract.errors import ClusterError, PermanentClusterError, SpecError, UserError
from trainbed.orchestrator.driver import Driver
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.adapter.informer import Informer
from trainbed.orchestrator.kube.control.caches import ClusterCaches
from trainbed.orchestrator.kube.control.campaign_runtime import CampaignRuntime, now_stamp
from trainbed.orchestrator.kube.control.executor import KubernetesExecutor
from trainbed.orchestrator.kube.control.lease import LeaseKeeper
from trainbed.orchestrator.kube.control.record_store import RecordStore, chunk_of
from trainbed.orchestrator.kube.control.status_writer import SYNC_S, StatusWriter
from trainbed.orchestrator.kube.objects.campaign_status import (
    FINAL_PHASES,
    CampaignStatus,
    Condition,
    with_stalled,
)
from trainbed.orchestrator.kube.objects.metadata import owner_reference
from trainbed.orchestrator.kube.objects.network_limits import refuse_unenforceable
from trainbed.orchestrator.plan.parse import parse_campaign
from trainbed.orchestrator.plan.trials import plan_campaign
from trainbed.orchestrator.results_dir import ResultsDir

log = logging.getLogger(__name__)
RESYNC_S = 30.0
#: Passes are at least this far apart, so a burst of watch events costs one pass, and at most
#: a third of the controller's time goes to passes (a pass reads every trial of the plan).
MIN_PASS_S = 0.01
#: Pauses after a pass that failed on a temporary API error (the adapter has already retried
#: each request), one step longer per failure in a row.
RETRY_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class Controller:
    """Reconciles every Campaign in a namespace (or only ``only``)."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        *,
        only: str | None = None,
        results_root: Path | None = None,
        default_queue: str | None = None,
    ) -> None:
        self.api = api
        #: The Kueue LocalQueue of campaigns that name none (the chart's kueue.queue): on a
        #: cluster where every batch Job must queue, a campaign cannot forget to.
        self.default_queue = default_queue
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
        self.writer = StatusWriter(api, namespace, self.caches.changes.bump)

    def _wanted(self) -> dict[str, dict[str, Any]]:
        """The campaigns this controller would reconcile if it held their leases."""
        found = self.campaigns.snapshot()
        return {n: o for n, o in found.items() if self.only is None or n == self.only}

    def start(self) -> Controller:
        try:
            self.caches.start()
            self.campaigns.start()
            self.leases.start()
            self._raise_fatal()
        except PermanentClusterError as err:
            self._stall(err)
            self.stop()
            raise
        return self

    def fatal(self) -> ClusterError | None:
        """The permanent API error one of the controller's parts stopped on, if any."""
        parts: list[Any] = [self.campaigns, self.caches.jobs, self.caches.pods, self.leases]
        parts += [r.executor for r in self.runtimes.values()]
        return next((p.fatal for p in parts if p.fatal is not None), None)

    def _raise_fatal(self) -> None:
        err = self.fatal()
        if err is not None:
            raise err

    def _stall(self, err: ClusterError) -> None:
        """Say on each campaign this controller looks after why it stopped (the ``Stalled``
        condition), where the API lets it write that. The caller raises ``err``: the CLI prints
        it as its one line and exits 2."""
        self.writer.close()  # a write still in flight would land after this one, without it
        found = self.campaigns.snapshot()
        names = {n for n in found if n in self.runtimes or self.leases.holds(n)}
        names |= {self.only} if self.only else set()
        for name in sorted(names):
            runtime = self.runtimes.get(name)
            previous = (
                runtime.written.conditions
                if runtime is not None
                else CampaignStatus.from_storage((found.get(name) or {}).get("status")).conditions
            )
            conditions = with_stalled(previous, err.status, str(err), now_stamp())
            try:
                self.api.patch_campaign_status(
                    self.namespace, name, {"conditions": [c.for_storage() for c in conditions]}
                )
            except ClusterError as also:
                log.warning("%s: the Stalled condition could not be written: %s", name, also)

    def interrupt(self) -> None:
        """Ask :meth:`run` to return after its pass (safe from a signal handler)."""
        self.stopping.set()
        self.caches.changes.bump()

    def stop(self) -> None:
        self.interrupt()
        self.writer.close()  # the last records and status written before the leases go
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
                with_default_queue(
                    {k: v for k, v in obj.items() if k != "status"}, self.default_queue
                ),
                source=f"Campaign {name}",
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
        executor = KubernetesExecutor(
            campaign,
            self.api,
            self.caches,
            namespace=self.namespace,
            owner=owner,
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
            self.writer.forget(name)
        previous = CampaignStatus.from_storage(obj.get("status"))
        runtime = CampaignRuntime(
            generation,
            campaign,
            driver,
            executor,
            store,
            total=len(trials),
            written=previous,
            view=previous,
        )
        self.runtimes[name] = runtime
        self.invalid.pop(name, None)
        return runtime

    def _invalid(self, name: str, generation: int, reason: str, message: str) -> None:
        self.invalid[name] = (generation, message)
        valid = Condition("Valid", "False", reason, message, now_stamp())
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
                self.writer.forget(name)
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
            self.writer.sync(runtime, done)
            all_done = all_done and done
        return all_done

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
        failures = 0
        while not self.stopping.is_set():
            seen = self.caches.changes.count
            began = time.monotonic()
            try:
                done = self.reconcile_once()
                self._raise_fatal()
            except PermanentClusterError as err:
                self._stall(err)
                raise
            except ClusterError as err:
                pause = RETRY_S[min(failures, len(RETRY_S) - 1)]
                failures += 1
                log.warning("%s; trying again in %g s", err, pause)
                self.stopping.wait(pause)
                continue
            failures = 0
            if until_done and self.only is not None and self.only in self.invalid:
                return
            if until_done and done and self._durable():
                return
            followed = self.followed() if until_done else None
            if followed is not None and _phase(followed[1]) in FINAL_PHASES:
                return  # finished by the controller that holds it
            spent = time.monotonic() - began
            self.stopping.wait(max(MIN_PASS_S, 3 * spent) - spent)
            pending = (
                any(
                    r.executor.unflushed or r.executor.live or r.view != r.written
                    for r in self.runtimes.values()
                )
                or self.writer.busy
            )
            self.caches.changes.wait(seen, SYNC_S if pending else RESYNC_S)


def with_default_queue(data: dict[str, Any], queue: str | None) -> dict[str, Any]:
    """The Campaign's data with ``spec.kubernetes.queue`` set to ``queue`` where it names
    none (unchanged without a default, or where its own queue stands)."""
    spec = data.get("spec")
    if not queue or not isinstance(spec, dict):
        return data
    settings = spec.get("kubernetes") if isinstance(spec.get("kubernetes"), dict) else {}
    if settings.get("queue"):
        return data
    return {**data, "spec": {**spec, "kubernetes": {**settings, "queue": queue}}}


def _phase(obj: dict[str, Any]) -> str:
    return CampaignStatus.from_storage(obj.get("status")).phase


def run_controller(
    namespace: str, kubeconfig: str | None = None, default_queue: str | None = None
) -> None:
    """``trainbed controller``: reconcile Campaigns until stopped."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    root = os.environ.get(RESULTS_PATH)
    controller = Controller(
        KubeApi.from_environment(kubeconfig),
        namespace,
        results_root=Path(root) if root else None,
        default_queue=default_queue,
    ).start()

    # a pod being deleted: run returns, and the stop below releases the leases
    signal.signal(signal.SIGTERM, lambda signum, frame: controller.interrupt())
    try:
        controller.run()
    finally:
        controller.stop()
