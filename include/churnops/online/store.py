"""The online feature store: each night's ``fct_customer_features`` in Redis, for the
real-time service (``churnops.serve``).

Layout, under the deployment's prefix P (``CHURNOPS_ONLINE_STORE_PREFIX``):

- ``P:night:<as_of_date>:<generation>`` is one materialization of a night (its *base*).
  Its customers are spread over B hashes ``<base>:b:<customer_id mod B>``, one field per
  customer: the customer's feature row as packed little-endian float64 (categoricals as
  their code in the landing contract's list, exactly the matrix the batch scores), so a
  value read back is bit for bit the value the batch sees. ``<base>:meta`` (a hash) holds
  the as-of date, the feature names in row order, B, the row count and when it was written.
- ``P:current`` holds the base of the night being served. A materialization writes its
  whole night under a new generation first, then moves the pointer in ONE command (a Lua
  script: only forward in time, or to a rewrite of the same night). A reader resolves the
  pointer and reads the rows in one script too, so it sees one night whole, never two.
- Retired nights (the previous base, an older backfilled night) get a TTL
  (``CHURNOPS_ONLINE_RETIRED_TTL_SECONDS``): readers in flight finish on them, then Redis
  drops them; nothing piles up. ``P:nights`` lists the bases not yet retired.

Feast (0.67, with its Redis online store) was evaluated first: it resolves beside the
locked stack only by downgrading SQLAlchemy 2.1 -> 2.0, redis 8 -> 7 and tenacity 9 -> 8
(``uv lock`` with ``feast[redis]==0.67.*``), the warehouse's own engine among them, so it
is not used; this store is plain redis-py pipelines.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from churnops.settings import OnlineStoreSettings

if TYPE_CHECKING:
    import numpy as np
    import redis

ROW_DTYPE = "<f8"
# Fields per HSET: big enough to amortise the round trip, small enough to stay a cheap
# command for a server that also answers readers.
_HSET_FIELDS = 2_000
_PIPELINE_COMMANDS = 64

# Moves the pointer to ARGV[1] (a base) unless it already points at a later night.
# Returns the previous base ("" when there was none) and 1 if switched, 0 if not.
SWITCH_SCRIPT = """
local current = redis.call('GET', KEYS[1])
local new_date = ARGV[2]
if current then
  local current_date = redis.call('HGET', current .. ':meta', 'as_of_date')
  if current_date and current_date > new_date then
    return {current, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], new_date)
return {current or '', 1}
"""

# Resolves the pointer and reads the customers' rows in one step: {base, as_of_date,
# row or false per id}; {} when no night has been switched to.
READ_SCRIPT = """
local base = redis.call('GET', KEYS[1])
if not base then return {} end
local meta = redis.call('HMGET', base .. ':meta', 'as_of_date', 'buckets')
local buckets = tonumber(meta[2])
local out = {base, meta[1]}
for i = 1, #ARGV do
  local id = ARGV[i]
  out[#out + 1] = redis.call('HGET', base .. ':b:' .. (tonumber(id) % buckets), id)
end
return out
"""


def pointer_key(prefix: str) -> str:
    """The key naming the night being served (its base), switched in one command."""
    return f"{prefix}:current"


class OnlineStoreError(RuntimeError):
    """The online store cannot be used: one line naming the Redis host."""


@dataclass(frozen=True)
class OnlineNight:
    """One materialized night, as its meta hash describes it."""

    base: str
    as_of_date: dt.date
    features: tuple[str, ...]
    buckets: int
    rows: int
    written_at: str


@dataclass
class MaterializeResult:
    as_of_date: dt.date
    state: str  # switched | kept (an older night than the one served: written and retired)
    rows: int
    features: int
    base: str
    previous: str
    seconds: float
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of_date": self.as_of_date.isoformat(),
            "state": self.state,
            "rows": self.rows,
            "features": self.features,
            "base": self.base,
            "previous": self.previous,
            "seconds": round(self.seconds, 3),
            "message": self.message,
        }


def text(value: bytes | str) -> str:
    """A Redis reply as text (clients built with or without ``decode_responses``)."""
    return value.decode() if isinstance(value, bytes) else value


def redis_location(url: str) -> str:
    """host:port/db of a Redis URL, without its password: what error lines may name."""
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{db}"


def pack_rows(matrix: np.ndarray) -> list[bytes]:
    """Each row of ``matrix`` as packed little-endian float64 bytes."""
    import numpy as np

    packed = np.ascontiguousarray(matrix, dtype=ROW_DTYPE)
    width = packed.shape[1] * 8
    blob = packed.tobytes()
    return [blob[i : i + width] for i in range(0, len(blob), width)]


def unpack_rows(rows: Sequence[bytes], features: int) -> np.ndarray:
    """The (rows, features) float64 matrix of packed rows (:func:`pack_rows`)."""
    import numpy as np

    if not rows:
        return np.empty((0, features), dtype=np.float64)
    return np.frombuffer(b"".join(rows), dtype=ROW_DTYPE).reshape(len(rows), features)


class OnlineStore:
    """The night's features in Redis (synchronous: materialization, the CLI, tests)."""

    def __init__(self, settings: OnlineStoreSettings, client: redis.Redis | None = None) -> None:
        import redis as redis_module

        self.settings = settings
        self.prefix = settings.prefix
        self.location = redis_location(settings.url)
        self.client = client or redis_module.Redis.from_url(
            settings.url, socket_connect_timeout=3, socket_timeout=30
        )

    @property
    def pointer_key(self) -> str:
        return pointer_key(self.prefix)

    @property
    def nights_key(self) -> str:
        return f"{self.prefix}:nights"

    def _fail(self, doing: str, error: Exception) -> OnlineStoreError:
        return OnlineStoreError(
            f"online store redis://{self.location} (prefix {self.prefix!r}): {doing} failed: "
            f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        )

    def ping(self) -> None:
        import redis as redis_module

        try:
            self.client.ping()
        except redis_module.RedisError as error:
            raise self._fail("ping", error) from None

    def materialize(
        self,
        as_of_date: dt.date,
        customer_ids: np.ndarray,
        matrix: np.ndarray,
        features: Sequence[str],
    ) -> MaterializeResult:
        """Write the night under a new generation, then switch the pointer to it (one
        command) unless a later night is served; retire what it replaces."""
        import numpy as np
        import redis as redis_module

        began = time.perf_counter()
        if matrix.shape != (len(customer_ids), len(features)):
            raise ValueError(
                f"online night {as_of_date}: matrix {matrix.shape} does not match "
                f"{len(customer_ids)} customers x {len(features)} features"
            )
        buckets = self.settings.buckets
        base = f"{self.prefix}:night:{as_of_date.isoformat()}:{uuid.uuid4().hex[:12]}"
        ids = np.asarray(customer_ids, dtype=np.int64)
        order = np.argsort(ids % buckets, kind="stable")
        ids = ids[order]
        bucket_of = ids % buckets
        rows = pack_rows(np.asarray(matrix)[order])
        names = [str(i).encode() for i in ids.tolist()]
        bounds = np.flatnonzero(np.diff(bucket_of)) + 1
        starts = [0, *bounds.tolist()]
        ends = [*bounds.tolist(), len(ids)]
        try:
            pipe = self.client.pipeline(transaction=False)
            queued = 0
            for start, end in zip(starts, ends, strict=True):
                if start == end:
                    continue
                key = f"{base}:b:{int(bucket_of[start])}"
                for chunk in range(start, end, _HSET_FIELDS):
                    stop = min(chunk + _HSET_FIELDS, end)
                    flat: list[bytes] = [None] * (2 * (stop - chunk))  # type: ignore[list-item]
                    flat[0::2] = names[chunk:stop]
                    flat[1::2] = rows[chunk:stop]
                    pipe.execute_command("HSET", key, *flat)
                    queued += 1
                    if queued >= _PIPELINE_COMMANDS:
                        pipe.execute()
                        queued = 0
            pipe.hset(
                f"{base}:meta",
                mapping={
                    "as_of_date": as_of_date.isoformat(),
                    "features": json.dumps(list(features)),
                    "buckets": buckets,
                    "rows": len(ids),
                    "written_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                },
            )
            pipe.execute()
            previous_raw, switched = self.client.eval(
                SWITCH_SCRIPT, 2, self.pointer_key, self.nights_key, base, as_of_date.isoformat()
            )
            previous = previous_raw.decode() if isinstance(previous_raw, bytes) else ""
            if switched:
                self._retire([b for b in self._listed() if b != base])
                state, message = (
                    "switched",
                    f"online store redis://{self.location}: {len(ids):,} customers x "
                    f"{len(features)} features of {as_of_date} now served",
                )
            else:
                self._retire([base])
                state, message = (
                    "kept",
                    f"online store redis://{self.location}: {as_of_date} written and retired: "
                    f"a later night ({previous.split(':')[-2]}) is served",
                )
        except redis_module.RedisError as error:
            raise self._fail(f"materializing {as_of_date}", error) from None
        return MaterializeResult(
            as_of_date,
            state,
            len(ids),
            len(features),
            base,
            previous,
            time.perf_counter() - began,
            message,
        )

    def _listed(self) -> list[str]:
        return [text(b) for b in self.client.hkeys(self.nights_key)]

    def _retire(self, bases: Sequence[str]) -> None:
        """Expire every key of ``bases`` after the retired TTL; the served base never."""
        current = self.client.get(self.pointer_key)
        served = text(current) if current else None
        ttl = self.settings.retired_ttl_seconds
        for base in bases:
            if base == served:
                continue
            meta = self.client.hget(f"{base}:meta", "buckets")
            buckets = int(meta) if meta else self.settings.buckets
            pipe = self.client.pipeline(transaction=False)
            for bucket in range(buckets):
                pipe.expire(f"{base}:b:{bucket}", ttl)
            pipe.expire(f"{base}:meta", ttl)
            pipe.hdel(self.nights_key, base)
            pipe.execute()

    def current(self) -> OnlineNight | None:
        """The night being served, or None."""
        import redis as redis_module

        try:
            base = self.client.get(self.pointer_key)
            if base is None:
                return None
            return self.night(text(base))
        except redis_module.RedisError as error:
            raise self._fail("reading the served night", error) from None

    def night(self, base: str) -> OnlineNight | None:
        meta = {text(k): text(v) for k, v in self.client.hgetall(f"{base}:meta").items()}
        if not meta:
            return None
        return OnlineNight(
            base,
            dt.date.fromisoformat(meta["as_of_date"]),
            tuple(json.loads(meta["features"])),
            int(meta["buckets"]),
            int(meta["rows"]),
            meta["written_at"],
        )

    def read(self, customer_ids: Sequence[int]) -> tuple[str, dt.date, list[bytes | None]] | None:
        """The served night's base, date and each customer's packed row (None: not in the
        night), read in one script; None when no night is served."""
        import redis as redis_module

        try:
            out = self.client.eval(
                READ_SCRIPT, 1, self.pointer_key, *[str(int(i)) for i in customer_ids]
            )
        except redis_module.RedisError as error:
            raise self._fail("reading features", error) from None
        if not out:
            return None
        return out[0].decode(), dt.date.fromisoformat(out[1].decode()), list(out[2:])

    def drop_all(self) -> int:
        """Delete every key under the prefix (tests, the bench)."""
        deleted = 0
        for key in self.client.scan_iter(match=f"{self.prefix}:*", count=10_000):
            deleted += int(self.client.unlink(key))
        return deleted
