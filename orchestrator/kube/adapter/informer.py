"""A list-then-watch cache of one kind of object, resumed from resourceVersion. Never polling.

Each informer lists its objects once (in pages), then follows a watch from the list's
resourceVersion and resumes from the last version it saw when the watch ends; a 410 Gone (the
version fell out of etcd's window) triggers a fresh list, whose differences from the cache are
delivered as ordinary changes. Every change bumps a shared :class:`Changes` counter, which the
controller waits on instead of sleeping, and is handed to ``on_change`` so a consumer can keep
its own index (the Kubernetes executor indexes by campaign and trial).

Objects stay JSON dicts end to end: ``list_fn`` returns the unread response
(:meth:`~trainbed.orchestrator.kube.adapter.api.KubeApi.lister`) and the watch runs with
``deserialize=False``, so no event is turned into the client's model classes
and back (that round trip cost more CPU per event than the API server spent sending it).
``transform`` trims each object to the fields its consumer reads before it is cached, as
client-go's TransformFunc does, which bounds the cache's memory at scale.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from trainbed.contract.errors import ClusterError
from trainbed.orchestrator.kube.adapter.client import ApiException, Watch

log = logging.getLogger(__name__)
#: Objects per list page: bounds one response's size at 10,000 trials.
PAGE = 500
#: Pause after a failed list or watch, doubled per failure in a row up to the last.
RELIST_S = (1.0, 2.0, 4.0, 8.0, 16.0, 30.0)

Obj = dict[str, Any]
OnChange = Callable[[str, Obj | None, Obj | None], None]


class Changes:
    """A counter with a condition: wait until it moves past what you last saw."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.count = 0

    def bump(self) -> None:
        with self._cond:
            self.count += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.count != seen, timeout=timeout)
            return self.count


def _identity(obj: Obj) -> Obj:
    return obj


class Informer:
    """Keeps ``objects`` (name -> dict) in step with the API for one list function."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        changes: Changes,
        *,
        label_selector: str | None = None,
        name: str = "informer",
        transform: Callable[[Obj], Obj] = _identity,
        on_change: OnChange | None = None,
    ) -> None:
        self.list_fn = list_fn
        self.changes = changes
        self.label_selector = label_selector
        self.name = name
        self.transform = transform
        self.on_change = on_change
        self.objects: dict[str, Obj] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: Watch | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None
        #: A permanent API error (403 on list, no CRD): the informer stopped on it, and its
        #: owner stops too (:meth:`start` raises it; the controller checks after each pass).
        self.fatal: ClusterError | None = None
        self._failures = 0

    def start(self, timeout: float = 60.0) -> Informer:
        self._thread.start()
        if not self.synced.wait(timeout):
            raise TimeoutError(f"{self.name}: the first list did not finish in {timeout:g} s")
        if self.fatal is not None:
            raise self.fatal
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=1)

    def snapshot(self) -> dict[str, Obj]:
        with self.lock:
            return dict(self.objects)

    def get(self, name: str) -> Obj | None:
        with self.lock:
            return self.objects.get(name)

    def _kwargs(self) -> dict[str, Any]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def _list(self) -> str:
        """List every page; apply the differences to the cache; return the resourceVersion."""
        items: dict[str, Obj] = {}
        token: str | None = None
        version = ""
        while True:
            kwargs = {**self._kwargs(), "limit": PAGE}
            if token:
                kwargs["_continue"] = token
            response = self.list_fn(**kwargs)
            try:
                data = json.loads(response.data)
            finally:
                response.release_conn()
            for item in data.get("items") or []:
                items[item["metadata"]["name"]] = self.transform(item)
            meta = data.get("metadata") or {}
            version = str(meta.get("resourceVersion", ""))
            token = meta.get("continue")
            if not token:
                break
        with self.lock:
            old, self.objects = self.objects, items
        if self.on_change is not None:
            for name in old.keys() - items.keys():
                self.on_change(name, old[name], None)
            for name, item in items.items():
                self.on_change(name, old.get(name), item)
        self.changes.bump()
        self.synced.set()
        self._failures = 0
        return version

    def _apply(self, kind: str, raw: Obj) -> None:
        name = raw["metadata"]["name"]
        item = None if kind == "DELETED" else self.transform(raw)
        with self.lock:
            old = self.objects.pop(name, None) if item is None else self.objects.get(name)
            if item is not None:
                self.objects[name] = item
        if self.on_change is not None:
            self.on_change(name, old, item)
        self.changes.bump()

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                self._watch = Watch()
                for event in self._watch.stream(
                    self.list_fn,
                    resource_version=version,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                    deserialize=False,
                    **self._kwargs(),
                ):
                    if self._stop.is_set():
                        break
                    kind = event["type"]
                    raw = event["object"]
                    version = raw["metadata"].get("resourceVersion", version)
                    if kind != "BOOKMARK":
                        self._apply(kind, raw)
            except ClusterError as err:  # the list or the watch request was answered "no"
                if self._stop.is_set():
                    return
                if err.permanent:
                    log.debug("%s: stopped: %s", self.name, err)  # the owner reports it
                    self.fatal = err
                    self.synced.set()  # start() returns, and raises it
                    self.changes.bump()  # the owner's loop wakes up and sees it
                    return
                if err.status != 410:
                    log.warning("%s: %s; relisting", self.name, err)
                    self._pause()
                version = ""
            except ApiException as err:  # an ERROR event in the watch stream
                if self._stop.is_set():
                    return
                if err.status != 410:
                    log.warning("%s: watch failed (%s); relisting", self.name, err.reason)
                    self._pause()
                version = ""
            except Exception as err:  # noqa: BLE001 - keep the cache alive, report once
                if self._stop.is_set():
                    return
                self.error = err
                log.warning("%s: watch error %r; relisting", self.name, err)
                version = ""
                self._pause()

    def _pause(self) -> None:
        """Back off before the next list: longer with each failure in a row."""
        self._stop.wait(RELIST_S[min(self._failures, len(RELIST_S) - 1)])
        self._failures += 1
