"""inline_literals: which parameters PostgreSQL reads inline (so ADBC can COPY the result)."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.warehouse.postgres_warehouse import inline_literals

pytestmark = pytest.mark.unit


def test_numbers_dates_timestamps_booleans_and_null_become_literals() -> None:
    sql = "select ? , '?', \"a?\", ?, ?, ?, ?, ? from t where x = ?"
    params = [
        7,
        -2.5,
        dt.date(2025, 3, 1),
        dt.datetime(2025, 3, 1, 12, 0, 1, 5),
        False,
        None,
        -1,
    ]
    assert inline_literals(sql, params) == (
        "select (7) , '?', \"a?\", (-2.5), date '2025-03-01', "
        "timestamp '2025-03-01 12:00:01.000005', false, null from t where x = (-1)"
    )


@pytest.mark.parametrize(
    "value",
    ["it's", b"bytes", float("nan"), float("inf"), dt.datetime(2025, 1, 1, tzinfo=dt.UTC)],
)
def test_anything_else_keeps_every_parameter_bound(value: object) -> None:
    assert inline_literals("select ?, ?", [1, value]) is None
