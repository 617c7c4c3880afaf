"""The online store on the real Redis (a prefix of this test's own): values round-trip bit
for bit, a night is switched to in one command and only forward in time, replaced nights
expire, and a store that cannot be reached fails in one line naming its host, never its
password."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from churnops.online import OnlineStore, OnlineStoreError
from churnops.online.store import unpack_rows
from churnops.settings import load_settings

pytestmark = pytest.mark.integration

FEATURES = ["tenure_days", "plan_type", "monthly_revenue_eur"]


@pytest.fixture
def store() -> Iterator[OnlineStore]:
    settings = load_settings(
        {
            "CHURNOPS_ONLINE_STORE_PREFIX": f"churnops-test-online-{uuid.uuid4().hex[:10]}",
            "CHURNOPS_ONLINE_BUCKETS": "7",
            "CHURNOPS_ONLINE_RETIRED_TTL_SECONDS": "120",
        }
    )
    online = OnlineStore(settings.online)
    yield online
    online.drop_all()


def _night(customers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(customers, len(FEATURES))) * 1e6
    matrix[::5, 1] = np.nan  # an unknown category, as the batch encodes it
    matrix[3, 2] = 5e-324  # the smallest subnormal survives too
    return np.arange(10, 10 + customers, dtype=np.int64) * 3, matrix


def test_a_night_round_trips_bit_for_bit_and_switches_forward_only(store: OnlineStore) -> None:
    ids, matrix = _night(500, 1)
    first = store.materialize(dt.date(2026, 3, 2), ids, matrix, FEATURES)
    assert first.state == "switched" and first.previous == "" and first.rows == 500
    served = store.current()
    assert served is not None and served.as_of_date == dt.date(2026, 3, 2)
    assert served.features == tuple(FEATURES) and served.buckets == 7
    read = store.read([int(ids[0]), int(ids[3]), 1, int(ids[-1])])
    assert read is not None
    base, night, rows = read
    assert base == first.base and night == dt.date(2026, 3, 2) and rows[2] is None
    got = unpack_rows([rows[0], rows[1], rows[3]], len(FEATURES))
    assert got.tobytes() == matrix[[0, 3, -1]].tobytes()  # bit for bit, NaN included

    # An older night (a backfill) is written but not served, and expires.
    older = store.materialize(dt.date(2026, 3, 1), ids[:10], matrix[:10], FEATURES)
    assert older.state == "kept" and store.current().base == first.base  # type: ignore[union-attr]
    assert 0 < store.client.ttl(f"{older.base}:meta") <= 120

    # The same night again: a new generation, switched to; the replaced one expires.
    again = store.materialize(dt.date(2026, 3, 2), ids, matrix * 2, FEATURES)
    assert again.state == "switched" and again.previous == first.base
    assert store.read([int(ids[0])])[0] == again.base  # type: ignore[index]
    assert 0 < store.client.ttl(f"{first.base}:b:0") <= 120
    assert store.client.ttl(f"{again.base}:b:0") == -1  # the served night never expires
    assert store.client.hkeys(store.nights_key) == [again.base.encode()]


def test_a_shape_mismatch_is_refused_before_anything_is_written(store: OnlineStore) -> None:
    ids, matrix = _night(20, 2)
    with pytest.raises(ValueError, match="does not match"):
        store.materialize(dt.date(2026, 3, 2), ids[:-1], matrix, FEATURES)
    assert store.current() is None


def test_an_unreachable_store_fails_in_one_line_naming_the_host() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends
    settings = load_settings()
    online = dataclasses.replace(
        settings.online, url=f"redis://:s3cret-pass@127.0.0.1:{port}/0", prefix="unreached"
    )
    store = OnlineStore(online)
    ids, matrix = _night(5, 3)
    with pytest.raises(OnlineStoreError) as failure:
        store.materialize(dt.date(2026, 3, 2), ids, matrix, FEATURES)
    message = str(failure.value)
    assert f"127.0.0.1:{port}" in message and "\n" not in message
    assert "s3cret" not in message
