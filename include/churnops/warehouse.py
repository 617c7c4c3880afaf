"""The warehouse's raw layer: one table per landing table, partitioned by drop day.

``raw.<table>`` holds the contract's columns plus three lineage columns:
``_drop_date`` (the day D of the drop a row came from: the partition key),
``_source_file`` and ``_loaded_at``. ``raw._loaded_drops`` records every partition
loaded, so "which days are in the warehouse" never depends on a table having rows
(a day without churn is still a loaded day).

A partition is only ever written whole: delete D, insert D, in one transaction. A rerun
replaces, a crash leaves the previous state.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.contracts import TableContract

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

RAW_SCHEMA = "raw"
LOADED_DROPS_TABLE = f"{RAW_SCHEMA}._loaded_drops"

_DUCKDB_TYPES = {
    "int64": "BIGINT",
    "int32": "INTEGER",
    "float64": "DOUBLE",
    "string": "VARCHAR",
    "bool": "BOOLEAN",
    "date32": "DATE",
    "timestamp[us]": "TIMESTAMP",
}


@contextlib.contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB warehouse file (created with its parent folder on first write)."""
    import duckdb

    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All statements of the block commit together, or none does: any error, in the block
    or in the commit, rolls the transaction back and is raised."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def utc_now() -> dt.datetime:
    """Now in UTC without tzinfo: what the warehouse's TIMESTAMP columns hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def raw_table_ddl(contract: TableContract) -> str:
    columns = [f"{c.name} {_DUCKDB_TYPES[c.arrow_type]}" for c in contract.columns]
    columns += ["_drop_date DATE NOT NULL", "_source_file VARCHAR", "_loaded_at TIMESTAMP"]
    return f"CREATE TABLE IF NOT EXISTS {RAW_SCHEMA}.{contract.name} ({', '.join(columns)})"


def ensure_raw_schema(con: duckdb.DuckDBPyConnection, contracts: list[TableContract]) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
    for contract in contracts:
        con.execute(raw_table_ddl(contract))
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {LOADED_DROPS_TABLE} ("
        "table_name VARCHAR NOT NULL, drop_date DATE NOT NULL, row_count BIGINT NOT NULL, "
        "source_files VARCHAR, loaded_at TIMESTAMP NOT NULL, PRIMARY KEY (table_name, drop_date))"
    )


def replace_partition(
    con: duckdb.DuckDBPyConnection,
    contract: TableContract,
    drop_date: dt.date,
    rows: pa.Table,
    source_files: list[str],
) -> int:
    """Replace the partition ``drop_date`` of ``raw.<table>`` with ``rows``, atomically."""
    import pyarrow as pa

    ensure_raw_schema(con, [contract])
    loaded_at = utc_now()
    staged = rows.select(list(contract.column_names)).append_column(
        "_drop_date", pa.array([drop_date] * rows.num_rows, pa.date32())
    )
    staged = staged.append_column(
        "_source_file", pa.array([",".join(source_files)] * rows.num_rows, pa.string())
    ).append_column("_loaded_at", pa.array([loaded_at] * rows.num_rows, pa.timestamp("us")))
    table = f"{RAW_SCHEMA}.{contract.name}"
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE _drop_date = ?", [drop_date])
        con.register("_incoming_partition", staged)
        con.execute(f"INSERT INTO {table} SELECT * FROM _incoming_partition")
        con.unregister("_incoming_partition")
        con.execute(
            f"INSERT OR REPLACE INTO {LOADED_DROPS_TABLE} VALUES (?, ?, ?, ?, ?)",
            [contract.name, drop_date, rows.num_rows, ",".join(source_files), loaded_at],
        )
    return rows.num_rows
