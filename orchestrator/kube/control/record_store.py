"""Per-trial records of a campaign, kept out of the Campaign object: chunked ConfigMaps.

The Campaign's status stays bounded (:mod:`~trainbed.orchestrator.kube.objects.campaign_status`);
each
recorded trial's entry (its Job's timestamps, its outcome and reason) goes into a ConfigMap
``<campaign>-records-<k>`` owned by the Campaign, where ``k`` is the trial's position in the run
order divided by :data:`CHUNK`. So 10,000 trials are 40 objects of at most ~200 KiB each, written
with one merge patch per touched chunk per status sync (not one API write per trial, as a
per-trial custom resource would need), read back with one paginated list when a controller
starts, and garbage-collected with the Campaign. docs/kubernetes.md says why this and not the
alternatives.

A record is written once, when the trial is recorded, and never changes: a merge patch that adds
the trial's key is idempotent, so a controller that dies between the patch and its reply writes
the same record again and nothing else. The pure converters are here with the thin adapter that
reads and writes them through :class:`~trainbed.orchestrator.kube.adapter.api.KubeApi`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from trainbed.contract.env import CAMPAIGN_LABEL, COMPONENT_LABEL, RECORDS_COMPONENT
from trainbed.contract.errors import ClusterError
from trainbed.orchestrator.kube.adapter.api import KubeApi
from trainbed.orchestrator.kube.objects.metadata import campaign_labels, object_metadata

#: Trials per records ConfigMap. A record is at most ~800 bytes (the reason is capped at
#: REASON_CHARS), so a chunk stays far below the 1 MiB a ConfigMap may hold.
CHUNK = 250
#: The longest reason a record keeps; result.json on the results volume keeps all of it.
REASON_CHARS = 400

Entry = dict[str, Any]


def chunk_name(campaign: str, index: int) -> str:
    """``<campaign>-records-<k>``: no trial's ``<campaign>-t<hex>`` can be spelt like this."""
    return f"{campaign}-records-{index:03d}"


def records_selector(campaign: str) -> str:
    """The label selector of a campaign's records ConfigMaps (``kubectl get cm -l ...``)."""
    return f"{CAMPAIGN_LABEL}={campaign},{COMPONENT_LABEL}={RECORDS_COMPONENT}"


def chunk_of(run_order: Iterable[str]) -> dict[str, int]:
    """trial_id -> its chunk, from the trials in run order."""
    return {trial_id: i // CHUNK for i, trial_id in enumerate(run_order)}


def compact(entry: Mapping[str, Any]) -> Entry:
    """The stored form of a record: no empty fields, the reason capped."""
    out = {k: v for k, v in entry.items() if v not in (None, "")}
    reason = out.get("reason")
    if isinstance(reason, str) and len(reason) > REASON_CHARS:
        out["reason"] = reason[: REASON_CHARS - 1] + "…"
    return out


def encode(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """ConfigMap ``data``: one compact JSON value per trial."""
    return {
        tid: json.dumps(compact(e), separators=(",", ":"), sort_keys=True)
        for tid, e in entries.items()
    }


def decode(configmaps: Iterable[Mapping[str, Any]]) -> dict[str, Entry]:
    """Every record held by these ConfigMaps (a trial appears in one; the union is taken)."""
    out: dict[str, Entry] = {}
    for cm in configmaps:
        for tid, text in (cm.get("data") or {}).items():
            out[tid] = json.loads(text)
    return out


def records_configmap(
    campaign: str,
    index: int,
    data: Mapping[str, str],
    *,
    namespace: str,
    owner: dict[str, Any] | None,
) -> dict[str, Any]:
    """A records chunk; owned by the Campaign, so deleting the Campaign deletes its records."""
    labels = {**campaign_labels(campaign), COMPONENT_LABEL: RECORDS_COMPONENT}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_metadata(chunk_name(campaign, index), namespace, labels, owner=owner),
        "data": dict(data),
    }


class RecordStore:
    """Reads and writes one campaign's records chunks."""

    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        campaign: str,
        *,
        chunks: Mapping[str, int],
        owner: dict[str, Any] | None = None,
    ) -> None:
        self.api = api
        self.namespace = namespace
        self.campaign = campaign
        self.chunks = chunks
        self.owner = owner
        #: chunks known to exist (created, or seen when loading)
        self._exists: set[str] = set()

    def load(self) -> dict[str, Entry]:
        """Every record of the campaign, from one paginated list of its chunks."""
        items = self.api.list_objects("ConfigMap", self.namespace, records_selector(self.campaign))
        self._exists.update(cm["metadata"]["name"] for cm in items)
        return decode(items)

    def write(self, entries: Mapping[str, Mapping[str, Any]]) -> None:
        """Make ``entries`` durable: one merge patch (or create) per chunk they fall in.

        Raises :class:`~trainbed.contract.errors.ClusterError` when any chunk could not be
        written; the caller keeps the entries and tries again."""
        by_chunk: dict[int, dict[str, Mapping[str, Any]]] = {}
        for tid, entry in entries.items():
            by_chunk.setdefault(self.chunks.get(tid, 0), {})[tid] = entry
        for index, chunk in sorted(by_chunk.items()):
            name = chunk_name(self.campaign, index)
            data = encode(chunk)
            if name in self._exists and self.api.patch_object(
                "ConfigMap", self.namespace, name, {"data": data}
            ):
                continue
            body = records_configmap(
                self.campaign, index, data, namespace=self.namespace, owner=self.owner
            )
            if not self.api.create(body) and not self.api.patch_object(
                "ConfigMap", self.namespace, name, {"data": data}
            ):  # it existed, then it was gone: someone deletes the records
                raise ClusterError(f"records ConfigMap {self.namespace}/{name} keeps vanishing")
            self._exists.add(name)
