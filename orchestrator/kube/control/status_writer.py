"""Making a campaign's records durable and writing its status, beside the reconcile loop.

Once a second at most per campaign, new records are written to the records ConfigMaps, then (and
only then) their trials may be cleaned up, then the Campaign's status is written where its value
changed. On a busy API server those writes take 50 to 300 ms; done on the reconcile loop, they
held every slot that a finished trial freed for that long (``benchmarks/k8s_submit.py`` measured
the busy fraction). So one writer thread does them, one write per campaign in flight, and the
loop applies each write's outcome on its next pass: what became durable, the status now in the
API, the results PVC's state. A permanent API error met by the writer is raised on the loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from trainbed.contract.errors import ClusterError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.control.campaign_runtime import CampaignRuntime
from trainbed.orchestrator.kube.control.record_store import RecordStore
from trainbed.orchestrator.kube.objects.blockers import pvc_blocker
from trainbed.orchestrator.kube.objects.campaign_status import CampaignStatus

log = logging.getLogger(__name__)
#: Records and status are written at most once per SYNC_S per campaign.
SYNC_S = 1.0
#: How often the results PVC is read while a campaign runs.
PVC_CHECK_S = 10.0
#: Marks a write that did not read the PVC (``None`` is a PVC with nothing wrong).
_UNREAD: Any = object()


@dataclass(frozen=True)
class Written:
    """What one write achieved, for the loop to apply."""

    #: trials whose records are now durable (their objects may now be cleaned up)
    durable: tuple[str, ...] = ()
    #: the status the API now holds, where this write changed it
    status: CampaignStatus | None = None
    #: the results PVC's blocker (None: fine), or _UNREAD
    pvc: Any = _UNREAD


class StatusWriter:
    """One thread that writes every campaign's records and status, one write per campaign at
    a time; :meth:`sync` is called by the loop after each campaign's pass."""

    def __init__(self, api: KubeApi, namespace: str, wake: Callable[[], None]) -> None:
        self.api = api
        self.namespace = namespace
        #: called when a write ends, so the loop applies it without waiting for a watch event
        self.wake = wake
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="status-writer")
        self._pending: dict[str, Future[Written]] = {}
        self._closed = False

    def sync(self, runtime: CampaignRuntime, done: bool) -> None:
        """Apply the campaign's finished write, if any; then start the next one when one is
        due (once per SYNC_S, and at once when the campaign is done) and none is in flight."""
        name = runtime.campaign.name
        future = self._pending.get(name)
        if future is not None:
            if not future.done():
                return
            del self._pending[name]
            _apply(runtime, future.result())  # a permanent error is raised here, on the loop
        now = time.monotonic()
        if not done and now - runtime.last_sync < SYNC_S:
            return
        runtime.last_sync = now
        batch = dict(runtime.executor.unflushed)
        check_pvc = not done and now - runtime.last_pvc_check >= PVC_CHECK_S
        if check_pvc:
            runtime.last_pvc_check = now
        runtime.view = runtime.status(done)
        status = runtime.view if runtime.view != runtime.written else None
        if not batch and not check_pvc and status is None:
            return
        pvc = runtime.campaign.spec.kubernetes.results_pvc if check_pvc else None
        if self._closed:
            return  # stopping: a write now would land after the leases go
        future = self._pool.submit(self._write_all, name, runtime.store, batch, status, pvc)
        # woken once the future is done, not before: a loop woken earlier sees it unfinished
        future.add_done_callback(lambda _: self.wake())
        self._pending[name] = future

    @property
    def busy(self) -> bool:
        """A write is in flight, whose outcome the loop has yet to apply."""
        return bool(self._pending)

    def forget(self, name: str) -> None:
        """The campaign is no longer this controller's: a write not yet begun is dropped, one
        in flight ends unapplied."""
        future = self._pending.pop(name, None)
        if future is not None:
            future.cancel()

    def close(self) -> None:
        """Let the writes in flight finish (their outcome is not applied: a restarted
        controller finds the Jobs of trials it did not clean up, and cleans them up)."""
        self._closed = True
        self._pool.shutdown(wait=True)

    def _write_all(
        self,
        name: str,
        store: RecordStore,
        batch: dict[str, dict[str, Any]],
        status: CampaignStatus | None,
        pvc_name: str | None,
    ) -> Written:
        if batch:
            try:
                store.write(batch)
            except ClusterError as err:
                if err.permanent:
                    raise
                log.warning("%s: writing records failed: %s", name, err)
                return Written()  # records stay unflushed and their Jobs stay; retried
        pvc = _UNREAD
        if pvc_name is not None:
            try:
                found = self.api.get_object("PersistentVolumeClaim", self.namespace, pvc_name)
                pvc = pvc_blocker(found, pvc_name, self.namespace)
            except ClusterError as err:
                if err.permanent:
                    raise
                log.warning("%s: reading the results PVC failed: %s", name, err)
        written = None
        if status is not None:
            try:
                self.api.patch_campaign_status(self.namespace, name, status.for_storage())
                written = status
            except ClusterError as err:
                if err.permanent:
                    raise
                log.warning("%s: writing the status failed: %s", name, err)
        return Written(durable=tuple(batch), status=written, pvc=pvc)


def _apply(runtime: CampaignRuntime, written: Written) -> None:
    if written.durable:
        runtime.executor.flushed(list(written.durable))
    if written.pvc is not _UNREAD:
        runtime.pvc = written.pvc
    if written.status is not None:
        runtime.written = written.status
