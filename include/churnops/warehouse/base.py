"""The warehouse resource: one small interface, one implementation per engine.

Stores (``churnops.ingest.store``, ``churnops.score.store``, ...) own their tables as
SQLAlchemy ``Table`` objects and their SQL; they reach the database only through a
:class:`Warehouse`, built once from the settings (:func:`churnops.warehouse.build_warehouse`)
and handed to them. Nothing outside the engine modules knows which engine it talks to.

The interface:

- ``ensure(*tables)``: make sure the tables (and their schemas) exist. SQLAlchemy compiles
  the DDL for the engine and reflects what is already there.
- ``rows`` / ``arrow`` / ``frame``: a query as dicts, an Arrow table or a pandas frame.
- ``transaction()``: a :class:`Session` whose statements commit together or not at all;
  ``Session.replace`` is "replace this partition": delete the partition's rows, insert the
  new ones (Arrow, columnar: DuckDB scans the Arrow table natively, PostgreSQL receives it by
  binary COPY through ADBC), in the one transaction.

SQL passed in uses ``?`` placeholders and SQL that both engines speak (no ``INSERT OR
REPLACE``, no ``date_diff``, no ``EXCLUDE``); the PostgreSQL engine numbers the
placeholders for its driver.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

Params = Sequence[Any]
log = logging.getLogger(__name__)


class WarehouseError(RuntimeError):
    """The warehouse could not do what was asked; the message says what to check."""


class WarehouseUnavailable(WarehouseError):
    """The warehouse cannot be reached (server down, wrong DSN, no such database)."""


class WarehouseBusy(WarehouseError):
    """Another process holds the warehouse (DuckDB admits one writing process)."""


class MissingTable(WarehouseError):
    """A query named a table that does not exist (yet)."""


class ConstraintViolation(WarehouseError):
    """A write broke a table's constraint (NOT NULL, CHECK, key): nothing of it was kept."""


def utc_now() -> dt.datetime:
    """Now in UTC without tzinfo: what the warehouse's TIMESTAMP columns hold."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def qualified_name(table: sa.Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


def arrow_type(column_type: sa.types.TypeEngine[Any]) -> pa.DataType:
    """The Arrow type the engines store a column of ``column_type`` as."""
    import pyarrow as pa

    if isinstance(column_type, sa.ARRAY):
        return pa.list_(arrow_type(column_type.item_type))
    # Order matters: BigInteger is an Integer, DateTime is not a Date.
    for sa_type, pa_type in (
        (sa.BigInteger, pa.int64()),
        (sa.SmallInteger, pa.int16()),
        (sa.Integer, pa.int32()),
        (sa.Boolean, pa.bool_()),
        (sa.Double, pa.float64()),
        (sa.Float, pa.float64()),
        (sa.DateTime, pa.timestamp("us")),
        (sa.Date, pa.date32()),
        (sa.String, pa.string()),
    ):
        if isinstance(column_type, sa_type):
            return pa_type
    raise TypeError(f"no Arrow type for column type {column_type!r}")


def arrow_schema(table: sa.Table) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in table.columns]
    )


def conform(table: sa.Table, data: pa.Table) -> pa.Table:
    """``data`` with exactly ``table``'s columns, in its order and types.

    Nullable columns ``data`` lacks are filled with nulls; a missing required column fails
    here, naming it, instead of deep in a COPY.
    """
    import pyarrow as pa

    schema = arrow_schema(table)
    columns = []
    for target in schema:
        if target.name in data.column_names:
            columns.append(data.column(target.name).cast(target.type))
        elif target.nullable:
            columns.append(pa.nulls(data.num_rows, target.type))
        else:
            raise ValueError(f"{qualified_name(table)}: no values for column {target.name!r}")
    return pa.Table.from_arrays(columns, schema=schema)


def plain_arrow(data: pa.Table) -> pa.Table:
    """``data`` without driver metadata on its fields (ADBC tags every field with its
    PostgreSQL type), so tables read from both engines compare equal."""
    import pyarrow as pa

    def strip(field: pa.Field) -> pa.Field:
        kind = field.type
        if pa.types.is_list(kind):
            kind = pa.list_(strip(kind.value_field))
        return pa.field(field.name, kind, nullable=field.nullable)

    schema = pa.schema([strip(f) for f in data.schema])
    if schema.equals(data.schema, check_metadata=True):
        return data
    # The same columns under the plain schema: no copy (a cast would rewrite every buffer).
    return pa.Table.from_arrays(data.columns, schema=schema)


class Session(ABC):
    """Statements on one connection: inside ``transaction()`` they commit together."""

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None: ...

    @abstractmethod
    def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    @abstractmethod
    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]: ...

    @abstractmethod
    def arrow(self, sql: str, params: Params = ()) -> pa.Table: ...

    @abstractmethod
    def _append(self, table: sa.Table, data: pa.Table) -> None:
        """Append ``data`` (already conformed to ``table``) columnar."""

    def frame(self, sql: str, params: Params = ()) -> pd.DataFrame:
        # Dates as datetime64, as DuckDB's own .df() gave them to the code reading frames.
        return self.arrow(sql, params).to_pandas(date_as_object=False)

    def insert(self, table: sa.Table, data: pa.Table) -> int:
        """Append the Arrow rows ``data`` to ``table``; returns the row count."""
        conformed = conform(table, data)
        if conformed.num_rows:
            self._append(table, conformed)
        return conformed.num_rows

    def delete(self, table: sa.Table, where: Mapping[str, Any]) -> None:
        """Delete the rows of ``table`` whose columns equal ``where``'s values; a value that
        is a list or tuple matches any of its items."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in where.items():
            if column not in table.columns:
                raise ValueError(f"{qualified_name(table)} has no column {column!r}")
            if isinstance(value, list | tuple):
                if not value:
                    return  # no partition named: nothing to delete
                clauses.append(f"{column} IN ({', '.join('?' * len(value))})")
                params.extend(value)
            else:
                clauses.append(f"{column} = ?")
                params.append(value)
        condition = " AND ".join(clauses) or "TRUE"
        self.execute(f"DELETE FROM {qualified_name(table)} WHERE {condition}", params)

    def replace(self, table: sa.Table, where: Mapping[str, Any], data: pa.Table) -> int:
        """Replace the partition ``where`` of ``table`` with ``data`` (delete, then insert)."""
        self.delete(table, where)
        return self.insert(table, data)


class Warehouse(ABC):
    """A warehouse engine: SQLAlchemy for DDL and reflection, Arrow for the bulk paths."""

    kind: ClassVar[str]

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._ensured: set[str] = set()

    @abstractmethod
    def describe(self) -> str:
        """Where the warehouse is, for messages (never a password)."""

    @abstractmethod
    def session(self) -> contextlib.AbstractContextManager[Session]:
        """A session for reads (each statement sees committed data)."""

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[Session]:
        """A session whose statements commit together at the end of the block, or roll
        back together on any error (raised)."""

    @abstractmethod
    def _translate(self, error: Exception) -> Exception | None:
        """The :class:`WarehouseError` an engine error means, or None to let it through."""

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except WarehouseError:
            raise
        except Exception as error:
            translated = self._translate(error)
            if translated is None:
                raise
            raise translated from error

    def ensure(self, *tables: sa.Table) -> None:
        """Create the tables (and schemas) that do not exist yet, and add the nullable
        columns a newer churnops declares to a table an older one created; once per
        process. A missing column that must hold a value cannot be added to rows that
        exist: that is refused, naming the table and the column."""
        todo = [t for t in tables if qualified_name(t) not in self._ensured]
        if not todo:
            return
        with self._translated(), self.engine.begin() as connection:
            for schema in sorted({t.schema for t in todo if t.schema}):
                connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
            inspector = sa.inspect(connection)
            for table in todo:
                if not inspector.has_table(table.name, schema=table.schema):
                    table.create(connection)
                    continue
                # information_schema: duckdb-engine's reflection of columns queries
                # PostgreSQL catalogs DuckDB does not have.
                there: set[str] = set(
                    connection.execute(
                        sa.text(
                            "SELECT column_name FROM information_schema.columns "
                            "WHERE table_schema = :schema AND table_name = :name"
                        ),
                        {
                            "schema": table.schema or inspector.default_schema_name,
                            "name": table.name,
                        },
                    ).scalars()
                )
                for column in table.columns:
                    if column.name in there:
                        continue
                    if not column.nullable:
                        raise WarehouseError(
                            f"{self.describe()}: {qualified_name(table)} lacks the column "
                            f"{column.name!r}, which must hold a value for every row: "
                            "rebuild the table (drop it; the next run re-creates it)"
                        )
                    kind = column.type.compile(dialect=connection.dialect)
                    connection.execute(
                        sa.text(
                            f"ALTER TABLE {qualified_name(table)} ADD COLUMN {column.name} {kind}"
                        )
                    )
                    log.info("added the column %s to %s", column.name, qualified_name(table))
        self._ensured.update(qualified_name(t) for t in todo)

    def has_table(self, table: sa.Table) -> bool:
        """Reflection: does ``table`` exist in the warehouse?"""
        if qualified_name(table) in self._ensured:
            return True
        with self._translated(), self.engine.connect() as connection:
            return sa.inspect(connection).has_table(table.name, schema=table.schema)

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self.session() as session:
            return session.rows(sql, params)

    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        with self.session() as session:
            return session.tuples(sql, params)

    def arrow(self, sql: str, params: Params = ()) -> pa.Table:
        with self.session() as session:
            return session.arrow(sql, params)

    def frame(self, sql: str, params: Params = ()) -> pd.DataFrame:
        with self.session() as session:
            return session.frame(sql, params)

    def replace_partition(self, table: sa.Table, where: Mapping[str, Any], data: pa.Table) -> int:
        """Replace one partition of ``table`` in its own transaction."""
        with self.transaction() as session:
            return session.replace(table, where, data)

    def check(self) -> None:
        """Connect once: raise :class:`WarehouseUnavailable` with what to check."""
        self.tuples("SELECT 1")

    def dispose(self) -> None:
        """Close pooled connections (before a fork, or at the end of a test)."""
        self.engine.dispose()
