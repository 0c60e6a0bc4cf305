"""One controller at a time per campaign: a ``coordination.k8s.io`` Lease named for it.

Deterministic names keep two controllers from creating a trial's Job twice, but both would
still write the campaign's status and records and clean up its Jobs. That happens when the
chart's controller runs and someone also runs ``trainbed run --backend kubernetes`` (which
drives the campaign from where it was typed), or when two ``trainbed controller`` processes
share a namespace. So each campaign has a Lease ``<campaign>-controller``, owned by the
Campaign (deleted with it), and only its holder reconciles the campaign:

- the holder renews it every :data:`RENEW_S`, from a thread of its own, so a long pass does not
  let it lapse;
- another controller takes it over once it has seen the same record unchanged for the lease's
  duration, by its own monotonic clock (as client-go's leader election does, so the machines'
  clocks need not agree), and at once when the holder released it on a clean stop;
- a holder whose last successful renewal is :data:`LEASE_S` old stops reconciling the campaign,
  since someone may have taken it over by then.

:func:`decide` is the rule, a pure function of what was read; :class:`LeaseKeeper` is the thin
adapter around it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from trainbed.contract.errors import ClusterError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.objects.metadata import (
    campaign_labels,
    object_metadata,
    owner_reference,
)

log = logging.getLogger(__name__)
#: How long a lease holds without renewal (``spec.leaseDurationSeconds``).
LEASE_S = 15
#: How often its holder renews it, and how often a waiting controller looks again.
RENEW_S = 5.0

Action = Literal["create", "renew", "take", "wait"]


def lease_name(campaign: str) -> str:
    """``<campaign>-controller``: a Lease, so no Job, Service or ConfigMap name meets it."""
    return f"{campaign}-controller"


def new_identity() -> str:
    """This process, as a lease's ``holderIdentity`` says it: host, pid and a nonce (a pod
    restarted in place has the same host name and pid 1)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Observed:
    """A lease's record as this process read it, and since when (monotonic s) it is unchanged."""

    holder: str
    renewed: str
    since: float


def decide(
    lease: dict[str, Any] | None, me: str, seen: Observed | None, now: float
) -> tuple[Action, Observed | None]:
    """What to do with a campaign's lease, as read (None: there is none); ``seen`` is what was
    observed of it before, ``now`` the monotonic clock. Returns the action and the observation
    to keep (None once the record is no one else's)."""
    if lease is None:
        return "create", None
    spec = lease.get("spec") or {}
    holder = spec.get("holderIdentity") or ""
    if holder == me:
        return "renew", None
    if not holder:  # released by a holder that stopped cleanly
        return "take", None
    renewed = spec.get("renewTime") or spec.get("acquireTime") or ""
    if seen is None or (seen.holder, seen.renewed) != (holder, renewed):
        seen = Observed(holder, renewed, now)
    duration = int(spec.get("leaseDurationSeconds") or LEASE_S)
    return ("take" if now - seen.since >= duration else "wait"), seen


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(
    campaign_object: dict[str, Any], namespace: str, holder: str, transitions: int = 0
) -> dict[str, Any]:
    """A new Lease for a campaign, held by ``holder``."""
    name = campaign_object["metadata"]["name"]
    stamp = _micro_time()
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": object_metadata(
            lease_name(name),
            namespace,
            campaign_labels(name),
            owner=owner_reference(campaign_object),
        ),
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": LEASE_S,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


class LeaseKeeper:
    """Holds the leases of the campaigns ``wanted()`` names, from a thread of its own.

    ``on_change`` is called when a campaign is won or lost, so the controller looks again at
    once. :meth:`holds` is what the controller asks before it touches a campaign.
    """

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        wanted: Callable[[], dict[str, dict[str, Any]]],
        on_change: Callable[[], None],
        identity: str | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.wanted = wanted
        self.on_change = on_change
        self.identity = identity or new_identity()
        self._seen: dict[str, Observed] = {}
        #: campaign -> monotonic time of this process's last successful write of its lease
        self._renewed: dict[str, float] = {}
        #: campaign -> the identity that holds it while this process waits
        self.others: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)
        #: A permanent API error met while keeping a lease (403 on leases, say).
        self.fatal: ClusterError | None = None

    def start(self) -> LeaseKeeper:
        self.keep()  # the campaigns there now are decided before the first pass
        self._thread.start()
        return self

    def holds(self, campaign: str) -> bool:
        with self._lock:
            renewed = self._renewed.get(campaign)
        return renewed is not None and time.monotonic() - renewed < LEASE_S

    def keep(self) -> None:
        """One round: hold (create, renew or take over) each wanted campaign's lease."""
        wanted = self.wanted()
        changed = False
        for name, obj in wanted.items():
            try:
                changed |= self._keep_one(name, obj)
            except ClusterError as err:  # the API is away: holds() lapses on its own
                if err.permanent:  # no retry fixes it: the controller stops on it and says why
                    self.fatal = err
                    changed = True
                else:
                    log.warning("%s: the lease could not be kept: %s", name, err)
        with self._lock:
            for name in set(self._renewed) - set(wanted):  # deleted: its lease went with it
                del self._renewed[name]
                changed = True
        if changed:
            self.on_change()

    def _keep_one(self, name: str, obj: dict[str, Any]) -> bool:
        lease = self.api.get_object("Lease", self.namespace, lease_name(name))
        now = time.monotonic()
        action, seen = decide(lease, self.identity, self._seen.get(name), now)
        if seen is None:
            self._seen.pop(name, None)
        else:
            self._seen[name] = seen
        won = False
        if action == "create":
            won = self.api.create(lease_object(obj, self.namespace, self.identity))
        elif action in ("renew", "take"):
            assert lease is not None
            spec = dict(lease.get("spec") or {})
            stamp = _micro_time()
            spec.update(holderIdentity=self.identity, leaseDurationSeconds=LEASE_S)
            spec["renewTime"] = stamp
            if action == "take":
                spec["acquireTime"] = stamp
                spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
            won = self.api.replace({**lease, "spec": spec})
        with self._lock:
            had = name in self._renewed
            if won:
                self._renewed[name] = now
                self.others.pop(name, None)
            else:  # waiting, beaten to a create or a take-over, or a renewal that lost a race
                self._renewed.pop(name, None)
                if lease is not None:
                    self.others[name] = (lease.get("spec") or {}).get("holderIdentity") or ""
        if won and action == "take":
            log.info("%s: took over its lease from %r", name, seen.holder if seen else "")
        elif had and not won:
            log.warning("%s: lost its lease to %r", name, self.others.get(name, ""))
        return won != had

    def release(self) -> None:
        """Give up every lease held, so the next controller need not wait for it to lapse."""
        with self._lock:
            held = list(self._renewed)
            self._renewed.clear()
        for name in held:
            try:
                lease = self.api.get_object("Lease", self.namespace, lease_name(name))
                spec = (lease or {}).get("spec") or {}
                if lease is not None and spec.get("holderIdentity") == self.identity:
                    self.api.replace({**lease, "spec": {**spec, "holderIdentity": ""}})
            except ClusterError as err:  # it lapses on its own
                log.warning("%s: the lease could not be released: %s", name, err)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(RENEW_S + 15)
        self.release()

    def _run(self) -> None:
        while not self._stop.wait(RENEW_S):
            self.keep()
