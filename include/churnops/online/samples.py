"""The real-time service's sampled answers: buffered in Redis by the service
(``churnops.serve.app.Service.sample``), moved into ``monitoring.online_requests`` by the
nightly's drift task right before it reports them (the warehouse has one writer at a time
in the local profile; the service never writes it)."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

from churnops.online.store import OnlineStore, OnlineStoreError

if TYPE_CHECKING:
    from collections.abc import Callable

    from churnops.monitor.store import MonitoringStore
    from churnops.settings import OnlineStoreSettings

SAMPLES_SUFFIX = "samples"
MOVE_BATCH = 10_000


def samples_key(prefix: str) -> str:
    return f"{prefix}:{SAMPLES_SUFFIX}"


def move_samples(online: OnlineStore, monitoring: MonitoringStore) -> int:
    """Move the buffered samples into the monitoring store: read a batch, write it
    (replacing rows of a retried move), then drop it from the buffer."""
    import pyarrow as pa

    from churnops.monitor.store import ONLINE_REQUESTS, replace_online_requests
    from churnops.warehouse.base import arrow_schema

    key = samples_key(online.prefix)
    moved = 0
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    while True:
        raw = online.client.lrange(key, 0, MOVE_BATCH - 1)
        if not raw:
            return moved
        rows = []
        for record in raw:
            sample = json.loads(record)
            at = dt.datetime.fromisoformat(sample["at"]).replace(tzinfo=None)
            for position, answer in enumerate(sample["answers"]):
                night = answer.get("feature_as_of_date")
                rows.append(
                    {
                        "sample_id": f"{sample['id']}:{position}",
                        "requested_at": at,
                        "customer_id": int(answer["customer_id"]),
                        "feature_as_of_date": dt.date.fromisoformat(night) if night else None,
                        "churn_probability": answer.get("churn_probability"),
                        "risk_band": answer.get("risk_band"),
                        "model_version": answer.get("model_version"),
                        "served_by": answer.get("served_by"),
                        "stale": bool(answer.get("stale", False)),
                        "moved_at": now,
                    }
                )
        replace_online_requests(
            monitoring, pa.Table.from_pylist(rows, schema=arrow_schema(ONLINE_REQUESTS))
        )
        online.client.ltrim(key, len(raw), -1)
        moved += len(rows)


def move_buffered_samples(
    settings: OnlineStoreSettings, monitoring: MonitoringStore, say: Callable[[str], None]
) -> int | None:
    """The buffered samples into the monitoring store, before the night's drift report
    reads them: the number moved, or None when there is no online store or it does not
    answer. Never fatal: with Redis down the samples stay buffered (the service keeps its
    buffer bounded) and the next night moves them; the drift report goes on without."""
    import redis

    if not settings.url:
        return None
    try:
        store = OnlineStore(settings)
        try:
            moved = move_samples(store, monitoring)
        except redis.RedisError as error:
            raise store._fail("moving the sampled answers", error) from None
    except OnlineStoreError as error:
        say(f"{error}: the sampled online answers stay buffered for the next night")
        return None
    say(f"{moved} sampled online answers moved to monitoring.online_requests")
    return moved
