"""The writer that tests/integration/test_warehouse_kill.py starts and kills.

Run as ``python kill_writer.py KIND TARGET DAY VERSION ROWS``: replaces partition ``DAY`` of
:data:`KILL_TABLE` with :func:`rows_for` ``(DAY, VERSION, ROWS)`` through
``Warehouse.replace_partition``. KIND is ``duckdb`` (TARGET a file) or ``postgres`` (TARGET
a DSN). It writes ``started`` to stderr once the rows are built and the warehouse is
reachable, right before the replace, and ``done SECONDS`` after it.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    import pyarrow as pa

    from churnops.warehouse import Warehouse

STARTED, DONE = "started", "done"
# Usage-like rows: ids are VERSION * ID_STRIDE + 0..ROWS-1, so a version's rows are known
# from their count and sum alone.
ID_STRIDE = 10_000_000
PLANS = ("basic", "standard", "premium")

KILL_TABLE = sa.Table(
    "usage_daily",
    sa.MetaData(schema="kill_test"),
    sa.Column("part", sa.Date, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column("calls", sa.Integer, nullable=False),
    sa.Column("session_minutes", sa.Double, nullable=False),
    sa.Column("data_gb", sa.Double, nullable=False),
    sa.Column("plan_type", sa.String, nullable=False),
    sa.Column("seen_at", sa.DateTime, nullable=False),
)


def rows_for(day: dt.date, version: int, rows: int) -> pa.Table:
    """The ``rows`` rows version ``version`` writes for ``day`` (deterministic)."""
    import numpy as np
    import pyarrow as pa

    index = np.arange(rows, dtype=np.int64)
    midnight = np.datetime64(day.isoformat(), "us")
    return pa.table(
        {
            "part": pa.array([day] * rows, pa.date32()),
            "version": pa.array(np.full(rows, version, dtype=np.int32)),
            "id": pa.array(index + version * ID_STRIDE),
            "customer_id": pa.array(1_000_000 + (index * 7919 + version) % 500_000),
            "calls": pa.array(((index * 31 + version) % 500).astype(np.int32)),
            "session_minutes": pa.array(index * 0.25 + version),
            "data_gb": pa.array((index % 1000) / 7.0),
            "plan_type": pa.array(np.array(PLANS)[(index + version) % len(PLANS)]),
            "seen_at": pa.array(midnight + (index % 86_400) * 1_000_000),
        }
    )


def checksum(version: int, rows: int) -> tuple[int, int, int]:
    """(count, sum of id, sum of calls) of :func:`rows_for` ``(day, version, rows)``."""
    import numpy as np

    ids = rows * version * ID_STRIDE + rows * (rows - 1) // 2
    calls = int(((np.arange(rows, dtype=np.int64) * 31 + version) % 500).sum())
    return rows, ids, calls


def open_warehouse(kind: str, target: str) -> Warehouse:
    if kind == "duckdb":
        from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

        return DuckDBWarehouse(Path(target))
    from churnops.warehouse.postgres_warehouse import PostgresWarehouse

    return PostgresWarehouse(target)


def main(argv: list[str]) -> int:
    kind, target, day, version, rows = argv
    warehouse = open_warehouse(kind, target)
    part = dt.date.fromisoformat(day)
    data = rows_for(part, int(version), int(rows))
    warehouse.ensure(KILL_TABLE)
    warehouse.check()
    print(STARTED, file=sys.stderr, flush=True)
    began = time.perf_counter()
    warehouse.replace_partition(KILL_TABLE, {"part": part}, data)
    print(f"{DONE} {time.perf_counter() - began:.3f}", file=sys.stderr, flush=True)
    warehouse.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
