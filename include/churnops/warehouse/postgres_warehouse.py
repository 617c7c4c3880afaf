"""The server engine: PostgreSQL, through SQLAlchemy (psycopg2) and ADBC (Arrow).

Two kinds of connection, each for what it does best:

- a SQLAlchemy engine on psycopg2 for DDL (compiled from the stores' ``Table`` objects) and
  reflection;
- a SQLAlchemy pool of ADBC connections (``adbc_driver_postgresql``) for everything that
  moves data: queries come back as Arrow (libpq's binary protocol, no Python object per
  value) and Arrow goes in by binary COPY (``adbc_ingest``). Several readers and writers
  work at once; a partition replace is one transaction of its own connection, so a reader
  sees the partition before or after, never half of it, and never waits ("busy").

A wrong DSN, an unreachable server or a missing database is reported as
:class:`WarehouseUnavailable` in one line naming the host, port, database and user, and
what to check; the password never appears (nor does the DSN as given).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import os
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import QueuePool

from churnops.warehouse.base import (
    ConstraintViolation,
    MissingTable,
    Params,
    Session,
    Warehouse,
    WarehouseUnavailable,
    plain_arrow,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from adbc_driver_postgresql.dbapi import Connection

# A ? outside quotes: the placeholder the stores write (DuckDB's), numbered for libpq.
_PLACEHOLDER_OR_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def numbered_placeholders(sql: str) -> str:
    """``?`` placeholders as ``$1, $2, ...`` (quoted text is left alone)."""
    counter = iter(range(1, 10_000))

    def number(match: re.Match[str]) -> str:
        token = match.group(0)
        return f"${next(counter)}" if token == "?" else token

    return _PLACEHOLDER_OR_QUOTED.sub(number, sql)


def _literal(value: Any) -> str | None:
    """``value`` as a PostgreSQL literal when its text cannot carry SQL (numbers, dates,
    timestamps, booleans, NULL), else None."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    # Numbers in parentheses: a negative one after an operator must not read as a comment.
    if isinstance(value, int):
        return f"({value})"
    if isinstance(value, float) and math.isfinite(value):
        return f"({value!r})"
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'" if value.tzinfo is None else None
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    return None


def inline_literals(sql: str, params: Params) -> str | None:
    """``sql`` with each ``?`` replaced by its parameter as a literal, or None when a
    parameter is of a type with no safe literal (text: it stays bound).

    Why: ADBC streams a result by binary COPY only for a statement without parameters; a
    bound one is executed as a prepared statement whose whole result libpq holds in memory
    first (the training frame's 4.5M rows: 10 GB of client memory, about twice as slow).
    """
    literals = [_literal(value) for value in params]
    if any(literal is None for literal in literals):
        return None
    values = iter(literals)

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        return str(next(values)) if token == "?" else token

    return _PLACEHOLDER_OR_QUOTED.sub(substitute, sql)


def parse_dsn(dsn: str) -> URL:
    """The DSN as a URL, whatever driver suffix it was written with.

    Raises :class:`~churnops.settings.SettingsError` (a ValueError) when it is not a
    PostgreSQL URL naming a database: libpq would fall back to a database named after the
    user, and the pipeline never guesses where the warehouse is.
    """
    from churnops.settings import SettingsError

    expected = "expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
    try:
        url = make_url(dsn)
    except sa.exc.ArgumentError:
        raise SettingsError(f"CHURNOPS_POSTGRES_DSN is not a database URL; {expected}") from None
    if url.get_backend_name() != "postgresql":
        raise SettingsError(
            f"CHURNOPS_POSTGRES_DSN names a {url.get_backend_name()!r} database; {expected}"
        )
    if not url.database:
        raise SettingsError(f"CHURNOPS_POSTGRES_DSN names no database; {expected}")
    return url


def session_options(inherited: str, work_mem: str | None, jit_above_cost: int | None = None) -> str:
    """libpq options for churnops' sessions: ``inherited`` (the user's PGOPTIONS or the
    DSN's ``options``), then ``work_mem`` and the JIT thresholds
    (``CHURNOPS_POSTGRES_JIT_ABOVE_COST``: one cost for compiling, inlining and optimizing,
    so a plan big enough to be compiled at all is compiled fully)."""
    parts = [inherited.strip()]
    if work_mem:
        parts.append(f"-c work_mem={work_mem}")
    if jit_above_cost is not None:
        parts += [
            f"-c {name}={jit_above_cost}"
            for name in ("jit_above_cost", "jit_inline_above_cost", "jit_optimize_above_cost")
        ]
    return " ".join(part for part in parts if part)


def dbt_profile_env(
    dsn: str, work_mem: str | None = None, jit_above_cost: int | None = None
) -> dict[str, str]:
    """What the ``prod`` output of dbt_project/profiles.yml reads: the DSN's parts,
    percent-decoded (a password may hold ``@`` or ``/``), and libpq's PGOPTIONS for dbt's
    sessions (dbt-postgres has no profile field for session settings):
    :func:`session_options` around any options already in the environment."""
    url = parse_dsn(dsn)
    return {
        "CHURNOPS_PG_HOST": url.host or "127.0.0.1",
        "CHURNOPS_PG_PORT": str(url.port or 5432),
        "CHURNOPS_PG_USER": url.username or "postgres",
        "CHURNOPS_PG_PASSWORD": url.password or "",
        "CHURNOPS_PG_DBNAME": url.database or "",
        "PGOPTIONS": session_options(os.environ.get("PGOPTIONS", ""), work_mem, jit_above_cost),
    }


class PostgresSession(Session):
    def __init__(self, con: Connection) -> None:
        self.con = con
        self.cursor = con.cursor()

    def execute(self, sql: str, params: Params = ()) -> None:
        self.cursor.execute(numbered_placeholders(sql), parameters=list(params) or None)

    def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        batch = [list(r) for r in rows]
        if batch:
            self.cursor.executemany(numbered_placeholders(sql), batch)

    def tuples(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        self.execute(sql, params)
        return list(self.cursor.fetchall())

    def rows(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        self.execute(sql, params)
        names = [d[0] for d in self.cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in self.cursor.fetchall()]

    def arrow(self, sql: str, params: Params = ()) -> pa.Table:
        inlined = inline_literals(sql, params) if params else None
        if inlined is not None:
            self.cursor.execute(inlined)
        else:
            self.execute(sql, params)
        return plain_arrow(self.cursor.fetch_arrow_table())

    def _append(self, table: sa.Table, data: pa.Table) -> None:
        # Binary COPY of the Arrow columns, matched by name, in this session's transaction.
        self.cursor.adbc_ingest(table.name, data, mode="append", db_schema_name=table.schema)

    def close(self) -> None:
        self.cursor.close()


class PostgresWarehouse(Warehouse):
    kind = "postgres"

    def __init__(
        self,
        dsn: str,
        pool_size: int = 4,
        work_mem: str | None = None,
        jit_above_cost: int | None = None,
    ) -> None:
        self.url = parse_dsn(dsn)
        data_url = self.url.set(drivername="postgresql")
        # The stages' big reads (the training frame's join and sort) get the same session
        # options as dbt, around any the DSN carries.
        data_url = data_url.update_query_dict(
            {
                "options": session_options(
                    str(data_url.query.get("options", "")), work_mem, jit_above_cost
                )
            }
        )
        # libpq decodes %20 but not SQLAlchemy's "+" for a space: render the query itself.
        query = urllib.parse.urlencode(data_url.query, doseq=True, quote_via=urllib.parse.quote)
        self._libpq_uri = data_url.set(query={}).render_as_string(hide_password=False) + (
            f"?{query}" if query else ""
        )
        super().__init__(
            sa.create_engine(
                self.url.set(drivername="postgresql+psycopg2"),
                pool_pre_ping=True,
                pool_size=2,
                hide_parameters=True,
            )
        )
        # Standalone SQLAlchemy pool of ADBC connections; a connection comes back rolled back.
        self._pool = QueuePool(
            self._connect_adbc, pool_size=pool_size, max_overflow=pool_size, reset_on_return=True
        )

    def describe(self) -> str:
        url = self.url
        return (
            f"PostgreSQL warehouse: database {url.database!r} on "
            f"{url.host or 'localhost'}:{url.port or 5432} as user {url.username or '(default)'!r}"
        )

    def _connect_adbc(self) -> Connection:
        import adbc_driver_postgresql.dbapi as adbc

        try:
            return adbc.connect(self._libpq_uri)
        except Exception as error:
            raise self._unavailable(error) from None

    def _unavailable(self, error: BaseException) -> WarehouseUnavailable:
        reason = _first_meaningful_line(str(getattr(error, "orig", None) or error))
        if self.url.password:
            reason = reason.replace(self.url.password, "***")
        return WarehouseUnavailable(
            f"cannot reach the {self.describe()}: {reason}. Check CHURNOPS_POSTGRES_DSN, that "
            f"the server is running, and that the database exists (createdb -h "
            f"{self.url.host or 'localhost'} -p {self.url.port or 5432} -U "
            f"{self.url.username or 'postgres'} {self.url.database})"
        )

    def _translate(self, error: Exception) -> Exception | None:
        import adbc_driver_manager

        sqlstate = getattr(error, "sqlstate", None) or getattr(
            getattr(error, "orig", None), "pgcode", None
        )
        # Unreachable: no answer at all, a connection or authentication failure, no such
        # database, the server shutting down. Other operational errors (a deadlock, a
        # statement timeout) are the statement's, and pass through as they are.
        if isinstance(error, sa.exc.OperationalError | adbc_driver_manager.OperationalError) and (
            sqlstate is None
            or sqlstate[:2] in {"08", "28", "3D"}
            or sqlstate in {"57P01", "57P02", "57P03"}
        ):
            return self._unavailable(error)
        if sqlstate in {"42P01", "3F000"}:  # undefined table, undefined schema
            return MissingTable(f"{self.describe()}: {_first_meaningful_line(str(error))}")
        if sqlstate and sqlstate.startswith("23"):  # integrity constraint violation
            return ConstraintViolation(f"{self.describe()}: {_first_meaningful_line(str(error))}")
        return None

    @contextlib.contextmanager
    def _session(self, commit: bool) -> Iterator[Session]:
        with self._translated():
            proxied = self._pool.connect()
        try:
            session = PostgresSession(proxied.dbapi_connection)
            with self._translated():
                try:
                    yield session
                    if commit:
                        proxied.dbapi_connection.commit()  # type: ignore[union-attr]
                finally:
                    session.close()
        finally:
            proxied.close()  # back to the pool, rolled back (whatever was not committed)

    def session(self) -> contextlib.AbstractContextManager[Session]:
        return self._session(commit=False)

    def transaction(self) -> contextlib.AbstractContextManager[Session]:
        return self._session(commit=True)

    def dispose(self) -> None:
        super().dispose()
        self._pool.dispose()


def _first_meaningful_line(text: str) -> str:
    """libpq's reason without the driver's prefixes (``IO: [libpq] Failed to connect:``)."""
    for line in text.splitlines():
        line = line.strip()
        line = re.sub(r"^(?:[A-Z_]+: )?(?:\[libpq\] )?", "", line)
        line = re.sub(r"^\(psycopg2\.[A-Za-z.]+\) ", "", line)
        if line:
            return line.rstrip(".")
    return text.strip() or "unknown error"
