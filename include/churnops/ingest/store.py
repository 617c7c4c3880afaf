"""The warehouse's raw layer (schema ``raw``): one table per landing table, by drop day.

``raw.<table>`` holds the contract's columns plus three lineage columns: ``_drop_date``
(the day D of the drop a row came from: the partition key), ``_source_file`` and
``_loaded_at``. ``raw._loaded_drops`` records every partition loaded, so "which days are
in the warehouse" never depends on a table having rows (a day without churn is still a
loaded day).

A partition is only ever written whole: delete D, insert D and D's ``_loaded_drops`` row,
in one transaction. A rerun replaces; a crash leaves the previous state.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from churnops.contracts import LANDING_TABLES, TableContract, contract_for
from churnops.warehouse import MissingTable, Warehouse, utc_now

if TYPE_CHECKING:
    import pyarrow as pa

RAW_SCHEMA = "raw"
_metadata = sa.MetaData(schema=RAW_SCHEMA)

_SQL_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "int64": sa.BigInteger,
    "int32": sa.Integer,
    "float64": sa.Double,
    "string": sa.String,
    "bool": sa.Boolean,
    "date32": sa.Date,
    "timestamp[us]": sa.DateTime,
}

LOADED_DROPS = sa.Table(
    "_loaded_drops",
    _metadata,
    sa.Column("table_name", sa.String, primary_key=True),
    sa.Column("drop_date", sa.Date, primary_key=True),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("source_files", sa.String),
    sa.Column("loaded_at", sa.DateTime, nullable=False),
)
LOADED_DROPS_TABLE = f"{RAW_SCHEMA}.{LOADED_DROPS.name}"


@functools.cache
def raw_table(table_name: str) -> sa.Table:
    """``raw.<table>``: the contract's columns and the lineage columns."""
    contract = contract_for(table_name)
    table = sa.Table(
        contract.name,
        _metadata,
        *(sa.Column(c.name, _SQL_TYPES[c.arrow_type]()) for c in contract.columns),
        sa.Column("_drop_date", sa.Date, nullable=False),
        sa.Column("_source_file", sa.String),
        sa.Column("_loaded_at", sa.DateTime),
    )
    # PostgreSQL scans a row store: without an index, replacing one day deletes by a scan
    # of every day loaded (45 M usage rows at 500k customers). DuckDB's column store skips
    # row groups by their min/max; an index there would only slow every delete and insert.
    sa.Index(f"{contract.name}_drop_date", table.c._drop_date).ddl_if(dialect="postgresql")
    return table


@dataclass(frozen=True)
class Partition:
    """One drop, ready to load: the validated rows of ``day`` and the files they came from."""

    day: dt.date
    rows: pa.Table
    source_files: Sequence[str]


class RawStore:
    """Reads and writes of the raw layer, through the warehouse resource."""

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse

    def ensure(self, contracts: Sequence[TableContract] | None = None) -> None:
        names = [c.name for c in contracts] if contracts is not None else list(LANDING_TABLES)
        self.warehouse.ensure(LOADED_DROPS, *(raw_table(n) for n in names))

    def replace_partitions(self, contract: TableContract, partitions: Sequence[Partition]) -> int:
        """Replace each partition's day of ``raw.<table>``, all in one transaction.

        Returns the rows written. Rows are cast to the contract's types on the way in.
        """
        import numpy as np
        import pyarrow as pa

        if not partitions:
            return 0
        self.ensure([contract])
        loaded_at = utc_now()
        counts = np.array([p.rows.num_rows for p in partitions], dtype=np.int64)
        sources = [",".join(p.source_files) for p in partitions]
        index = pa.array(np.repeat(np.arange(len(partitions)), counts))
        days = pa.array([p.day for p in partitions], pa.date32())
        schema = contract.arrow_schema()
        staged = pa.concat_tables(
            [p.rows.select(list(contract.column_names)).cast(schema) for p in partitions]
        )
        staged = (
            staged.append_column("_drop_date", days.take(index))
            .append_column("_source_file", pa.array(sources, pa.string()).take(index))
            .append_column(
                "_loaded_at",
                pa.repeat(pa.scalar(loaded_at, pa.timestamp("us")), staged.num_rows),
            )
        )
        drops = pa.table(
            {
                "table_name": pa.array([contract.name] * len(partitions), pa.string()),
                "drop_date": days,
                "row_count": pa.array(counts, pa.int64()),
                "source_files": pa.array(sources, pa.string()),
                "loaded_at": pa.array([loaded_at] * len(partitions), pa.timestamp("us")),
            }
        )
        day_list = [p.day for p in partitions]
        with self.warehouse.transaction() as session:
            session.replace(raw_table(contract.name), {"_drop_date": day_list}, staged)
            session.replace(
                LOADED_DROPS, {"table_name": contract.name, "drop_date": day_list}, drops
            )
        return staged.num_rows

    def replace_partition(
        self, contract: TableContract, day: dt.date, rows: pa.Table, source_files: Sequence[str]
    ) -> int:
        """Replace the partition ``day`` of ``raw.<table>`` with ``rows``, atomically."""
        return self.replace_partitions(contract, [Partition(day, rows, source_files)])

    # ------------------------------------------------------------------ reads
    def row_counts(self, table_name: str) -> dict[dt.date, int]:
        """Rows loaded per drop day of ``table_name``."""
        try:
            found = self.warehouse.tuples(
                f"SELECT drop_date, row_count FROM {LOADED_DROPS_TABLE} WHERE table_name = ?",
                [table_name],
            )
        except MissingTable:
            return {}
        return {day: int(count) for day, count in found}

    def recent_row_counts(self, table_name: str, before: dt.date, days: int) -> list[int]:
        """Row counts of the ``days`` latest drops of ``table_name`` before ``before``."""
        try:
            found = self.warehouse.tuples(
                f"SELECT row_count FROM {LOADED_DROPS_TABLE} "
                "WHERE table_name = ? AND drop_date < ? ORDER BY drop_date DESC LIMIT ?",
                [table_name, before, days],
            )
        except MissingTable:
            return []
        return [int(r[0]) for r in found]

    def row_count(self, table_name: str, day: dt.date) -> int | None:
        """Rows loaded for ``table_name`` on ``day``; None when the day is not loaded."""
        try:
            found = self.warehouse.tuples(
                f"SELECT row_count FROM {LOADED_DROPS_TABLE} "
                "WHERE table_name = ? AND drop_date = ?",
                [table_name, day],
            )
        except MissingTable:
            return None
        return int(found[0][0]) if found else None

    def loaded_days(self, start: dt.date, end: dt.date) -> dict[str, set[dt.date]]:
        """Per table, the drop days in [start, end] that are loaded."""
        have: dict[str, set[dt.date]] = {}
        try:
            found = self.warehouse.tuples(
                f"SELECT table_name, drop_date FROM {LOADED_DROPS_TABLE} "
                "WHERE drop_date BETWEEN ? AND ?",
                [start, end],
            )
        except MissingTable:
            return have
        for table, day in found:
            have.setdefault(table, set()).add(day)
        return have

    def first_loaded_day(self) -> dt.date | None:
        try:
            found = self.warehouse.tuples(f"SELECT min(drop_date) FROM {LOADED_DROPS_TABLE}")
        except MissingTable:
            return None
        return found[0][0] if found else None

    def partition(self, table_name: str, day: dt.date) -> pa.Table:
        """The rows of ``raw.<table>`` loaded for ``day`` (tests, audits)."""
        return self.warehouse.arrow(
            f"SELECT * FROM {RAW_SCHEMA}.{contract_for(table_name).name} WHERE _drop_date = ?",
            [day],
        )
