"""The embedded engine: one DuckDB file, through SQLAlchemy (duckdb_engine) and Arrow.

The only module of the package that imports ``duckdb``.

DuckDB admits one process at a time on a file (and then any number of connections inside
it). So the engine holds no pool (``NullPool``): a connection is opened for a session and
closed after it, and the file is free for the next process (an Airflow task, dbt, the
portal) as soon as the work is done. A process that finds the file held by another gets
:class:`WarehouseBusy`; in Airflow every writer takes the one slot of the warehouse pool.

Arrow stays native both ways: an Arrow table is scanned in place by ``INSERT ... SELECT``
after ``register``, and a result is streamed into Arrow by ``to_arrow_table``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from churnops.warehouse.base import (
    ConstraintViolation,
    MissingTable,
    Params,
    Session,
    Warehouse,
    WarehouseBusy,
    WarehouseError,
    plain_arrow,
    qualified_name,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

_names = itertools.count()


class DuckDBSession(Session):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def execute(self, sql: str, params: Params = ()) -> None:
        self.con.execute(sql, list(params))

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [list(r) for r in rows]
        if batch:
            self.con.executemany(sql, batch)

    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        cursor = self.con.execute(sql, list(params))
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def arrow(self, sql: str, params: Params = ()) -> pa.Table:
        # A relation streams into Arrow without the extra copy a cursor's result makes.
        return plain_arrow(self.con.sql(sql, params=list(params)).to_arrow_table())

    def _append(self, table: sa.Table, data: pa.Table) -> None:
        name = f"_churnops_incoming_{next(_names)}"
        columns = ", ".join(c.name for c in table.columns)
        self.con.register(name, data)
        self.con.execute(
            f"INSERT INTO {qualified_name(table)} ({columns}) SELECT {columns} FROM {name}"
        )
        # Not in a `finally`: after a failed insert the transaction is aborted and DuckDB
        # refuses even this; the view goes with the connection, closed after the session.
        self.con.unregister(name)


def _quiet_session(dbapi_connection: Any, _record: Any) -> None:
    """No progress bar: DuckDB draws one on the terminal for any query past two seconds
    (the training frame's join, a bootstrap's aggregation), and in a task log or the
    bench's output it is a line of carriage returns between the real lines. It is a
    session option (a global one is refused), so every new connection sets it."""
    dbapi_connection.execute("SET enable_progress_bar = false")


class DuckDBWarehouse(Warehouse):
    kind = "duckdb"

    def __init__(self, path: Path, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        super().__init__(
            sa.create_engine(
                f"duckdb:///{path}",
                poolclass=NullPool,
                connect_args={"read_only": read_only},
            )
        )
        sa.event.listen(self.engine, "connect", _quiet_session)

    def describe(self) -> str:
        return f"DuckDB warehouse {self.path}"

    def _translate(self, error: Exception) -> Exception | None:
        import duckdb

        # SQLAlchemy wraps driver errors; the DuckDB error is the cause.
        cause = getattr(error, "orig", None) or error
        text = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        if isinstance(cause, duckdb.IOException) and "lock" in str(cause).lower():
            return WarehouseBusy(
                f"{self.describe()} is held by another process ({text}); DuckDB admits one "
                "writing process: wait for it to finish, or use the PostgreSQL warehouse "
                "(CHURNOPS_WAREHOUSE=postgres) for concurrent readers and writers"
            )
        if isinstance(cause, duckdb.CatalogException) and "does not exist" in str(cause):
            return MissingTable(f"{self.describe()}: {text}")
        if isinstance(cause, duckdb.ConstraintException):
            return ConstraintViolation(f"{self.describe()}: {text}")
        if isinstance(cause, duckdb.IOException):
            return WarehouseError(f"{self.describe()} cannot be opened: {text}")
        return None

    @contextlib.contextmanager
    def _native(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.exists():
            raise MissingTable(f"{self.describe()} does not exist yet")
        with self._translated(), self.engine.connect() as connection:
            # duckdb_engine wraps the native connection and forwards to it.
            yield connection.connection.driver_connection  # type: ignore[misc]

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self._native() as con, self._translated():
            yield DuckDBSession(con)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._native() as con, self._translated():
            con.execute("BEGIN TRANSACTION")
            try:
                yield DuckDBSession(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def ensure(self, *tables: sa.Table) -> None:
        if self.read_only:
            return  # a reader never creates; a missing table reads as MissingTable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        super().ensure(*tables)

    def has_table(self, table: sa.Table) -> bool:
        if not self.path.exists():
            return False
        return super().has_table(table)

    def check(self) -> None:
        try:
            super().check()
        except WarehouseBusy:
            raise
        except MissingTable:
            return  # no file yet for a reader: the first writer creates it


def dbt_profile_env(path: Path) -> dict[str, str]:
    """What the ``local`` output of dbt_project/profiles.yml reads."""
    return {"CHURNOPS_DUCKDB_PATH": str(path)}


# DuckDB admits one writer: dbt's threads would only wait for each other's lock.
DBT_THREADS = 1


def release_dbt_handles() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the life of the process.

    DuckDB lets one process hold the file: left open after an in-process dbt run, the
    handle would lock every other process out (an Airflow task started by the same
    command, the portal) until this process exits.
    """
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None


def release_type_constants_at_exit() -> None:
    """Drop the duckdb package's module-level type constants (``duckdb.sqltypes.VARCHAR``
    and the like) as the process exits.

    duckdb 2.0's bindings are nanobind's, which checks at interpreter shutdown that every
    object it made was freed. In a process that has also imported Great Expectations and
    used the SQLAlchemy dialect (every churnops command that ingests), the interpreter gets
    there before it clears duckdb's modules, and the check printed about 40 lines of
    "nanobind: leaked 27 instances ... leaked type DuckDBPyConnection" at the end of
    ``make run`` and of every such task's log: no memory was lost, the process was ending.
    Freed here, the check finds nothing. Registered at import, so it runs after the exit
    handlers registered later (atexit is last in, first out); nothing in churnops uses
    duckdb from an exit handler.
    """
    for name, module in list(sys.modules.items()):
        if module is None or not (name == "duckdb" or name.startswith(("duckdb.", "_duckdb"))):
            continue
        for key, value in list(vars(module).items()):
            if type(value).__name__ == "DuckDBPyType":
                with contextlib.suppress(AttributeError, TypeError):
                    delattr(module, key)


atexit.register(release_type_constants_at_exit)
