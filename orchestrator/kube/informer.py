"""A list-then-watch cache of one kind of object, resumed from resourceVersion. Never polling.

Each informer lists its objects once, then follows a watch from the list's resourceVersion and
resumes from the last version it saw when the watch ends; a 410 Gone (the version fell out of
etcd's window) triggers a fresh list. Every change bumps a shared :class:`Changes` counter, which
the controller waits on instead of sleeping.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


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


class Informer:
    """Keeps ``objects`` (name -> dict) in step with the API for one list function."""

    def __init__(
        self,
        list_fn: Callable[..., Any],
        serialize: Callable[[Any], dict[str, Any]],
        changes: Changes,
        *,
        label_selector: str | None = None,
        name: str = "informer",
    ) -> None:
        self.list_fn = list_fn
        self.serialize = serialize
        self.changes = changes
        self.label_selector = label_selector
        self.name = name
        self.objects: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.synced = threading.Event()
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def start(self, timeout: float = 30.0) -> Informer:
        self._thread.start()
        if not self.synced.wait(timeout):
            raise TimeoutError(f"{self.name}: the first list did not finish in {timeout:g} s")
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._watch is not None:
            self._watch.stop()
        self._thread.join(timeout=5)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        with self.lock:
            return dict(self.objects)

    def _kwargs(self) -> dict[str, Any]:
        return {"label_selector": self.label_selector} if self.label_selector else {}

    def _list(self) -> str:
        response = self.list_fn(**self._kwargs())
        data = self.serialize(response)
        items = data.get("items", [])
        with self.lock:
            self.objects = {item["metadata"]["name"]: item for item in items}
        self.changes.bump()
        self.synced.set()
        return str(data.get("metadata", {}).get("resourceVersion", ""))

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._list()
                self._watch = watch.Watch()
                for event in self._watch.stream(
                    self.list_fn,
                    resource_version=version,
                    timeout_seconds=300,
                    allow_watch_bookmarks=True,
                    **self._kwargs(),
                ):
                    if self._stop.is_set():
                        break
                    kind = event["type"]
                    obj = event["object"]
                    item = obj if isinstance(obj, dict) else self.serialize(obj)
                    if kind == "ERROR":
                        if item.get("code") == 410:
                            version = ""
                            break
                        continue
                    version = item["metadata"].get("resourceVersion", version)
                    if kind == "BOOKMARK":
                        continue
                    name = item["metadata"]["name"]
                    with self.lock:
                        if kind == "DELETED":
                            self.objects.pop(name, None)
                        else:
                            self.objects[name] = item
                    self.changes.bump()
            except ApiException as err:
                if self._stop.is_set():
                    return
                if err.status == 410:
                    version = ""
                    continue
                log.warning("%s: watch failed (%s); relisting", self.name, err.reason)
                version = ""
                self._stop.wait(1.0)
            except Exception as err:  # noqa: BLE001 - keep the cache alive, report once
                if self._stop.is_set():
                    return
                self.error = err
                log.warning("%s: watch error %r; relisting", self.name, err)
                version = ""
                self._stop.wait(1.0)
