"""The warehouse resource on both engines: DDL from SQLAlchemy tables, partition replaces
that are all or nothing, Arrow in and out with the tables' types, ``?`` placeholders, the
errors the stores rely on, and the raw store's reads giving the same answers everywhere.

Every test taking ``warehouse`` runs on a DuckDB file and on a fresh PostgreSQL database
(``tests/conftest.py``). The connection-error tests are PostgreSQL's own.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY

from churnops.contracts import CHURN_EVENTS, USAGE_DAILY
from churnops.ingest.store import LOADED_DROPS, Partition, RawStore, raw_table
from churnops.warehouse import (
    ConstraintViolation,
    MissingTable,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
    utc_now,
)
from churnops.warehouse.base import arrow_schema
from churnops.warehouse.postgres_warehouse import PostgresWarehouse
from tests.helpers import reopened
from tests.landing_drops import valid_table

pytestmark = pytest.mark.integration

D1, D2, D3 = dt.date(2025, 3, 1), dt.date(2025, 3, 2), dt.date(2025, 3, 3)

_metadata = sa.MetaData(schema="wh_test")
EVENTS = sa.Table(
    "events",
    _metadata,
    sa.Column("part", sa.Date, nullable=False),
    sa.Column("id", sa.BigInteger, nullable=False),
    sa.Column("small", sa.Integer),
    sa.Column("score", sa.Double),
    sa.Column("label", sa.String),
    sa.Column("flag", sa.Boolean),
    sa.Column("seen_at", sa.DateTime),
    sa.Column("tags", ARRAY(sa.String)),
)
# A second schema, with a key.
KEYED = sa.Table(
    "keyed",
    sa.MetaData(schema="wh_other"),
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)
SELECT_EVENTS = "SELECT * FROM wh_test.events ORDER BY part, id"


def _events(part: dt.date, ids: range, label: str = "old") -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "part": pa.array([part] * n, pa.date32()),
            "id": pa.array(list(ids), pa.int64()),
            "small": pa.array([i % 7 for i in ids], pa.int32()),
            "score": pa.array([i / 3 for i in ids], pa.float64()),
            "label": pa.array([f"{label}-{i}" for i in ids], pa.string()),
            "flag": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
            "seen_at": pa.array(
                [dt.datetime(2025, 3, 1, 0, 0, i % 60, i) for i in ids], pa.timestamp("us")
            ),
            "tags": pa.array([[label, str(i)] for i in ids], pa.list_(pa.string())),
        }
    )


def _partition(warehouse: Warehouse, part: dt.date) -> list[dict]:
    return warehouse.rows("SELECT * FROM wh_test.events WHERE part = ? ORDER BY id", [part])


def _counts(warehouse: Warehouse) -> dict[dt.date, int]:
    return dict(warehouse.tuples("SELECT part, count(*) FROM wh_test.events GROUP BY part"))


# ----------------------------------------------------------------------------- DDL
def test_ensure_creates_schemas_and_tables_once(warehouse: Warehouse) -> None:
    assert not warehouse.has_table(EVENTS) and not warehouse.has_table(KEYED)
    warehouse.ensure(EVENTS, KEYED)
    assert warehouse.has_table(EVENTS) and warehouse.has_table(KEYED)

    # What is stored, seen by a resource that has ensured nothing itself.
    fresh = reopened(warehouse)
    try:
        assert fresh.has_table(EVENTS) and fresh.has_table(KEYED)
        # The catalog as information_schema shows it (both engines have one).
        schemas = {
            r[0] for r in fresh.tuples("SELECT schema_name FROM information_schema.schemata")
        }
        assert {"wh_test", "wh_other"} <= schemas
        columns = fresh.tuples(
            "SELECT column_name, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            ["wh_test", "events"],
        )
        assert columns == [(c.name, "YES" if c.nullable else "NO") for c in EVENTS.columns]
        key = fresh.tuples(
            "SELECT k.column_name FROM information_schema.table_constraints AS c "
            "JOIN information_schema.key_column_usage AS k "
            "ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = ? AND c.table_name = ?",
            ["wh_other", "keyed"],
        )
        assert key == [("name",)]

        # Idempotent: the same resource, and another one, ensure again without touching rows.
        warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(3)))
        warehouse.ensure(EVENTS, KEYED)
        fresh.ensure(EVENTS, KEYED)
        assert fresh.has_table(EVENTS)
        assert _counts(fresh) == {D1: 3}
    finally:
        fresh.dispose()


def test_ensure_adds_the_nullable_columns_a_newer_declaration_has(warehouse: Warehouse) -> None:
    """A table an older churnops created gets the new nullable columns, rows kept; a new
    column that must hold a value is refused in one line naming table and column."""
    older = sa.Table(
        "evolving",
        sa.MetaData(schema="wh_test"),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("score", sa.Double, nullable=False),
    )
    warehouse.ensure(older)
    with warehouse.transaction() as session:
        session.insert(older, pa.table({"id": [1, 2], "score": [0.5, 0.25]}))
    newer = sa.Table(
        "evolving",
        sa.MetaData(schema="wh_test"),
        *(c.copy() for c in older.columns),
        sa.Column("contact", sa.Boolean),
        sa.Column("tags", ARRAY(sa.String)),
    )
    fresh = reopened(warehouse)
    try:
        fresh.ensure(newer)
        assert fresh.rows("SELECT * FROM wh_test.evolving ORDER BY id") == [
            {"id": 1, "score": 0.5, "contact": None, "tags": None},
            {"id": 2, "score": 0.25, "contact": None, "tags": None},
        ]
        with fresh.transaction() as session:
            session.insert(
                newer, pa.table({"id": [3], "score": [0.1], "contact": [True], "tags": [["a"]]})
            )
        assert fresh.rows("SELECT contact, tags FROM wh_test.evolving WHERE id = 3") == [
            {"contact": True, "tags": ["a"]}
        ]
    finally:
        fresh.dispose()
    required = sa.Table(
        "evolving",
        sa.MetaData(schema="wh_test"),
        *(c.copy() for c in newer.columns),
        sa.Column("weight", sa.Double, nullable=False),
    )
    other = reopened(warehouse)
    try:
        with pytest.raises(WarehouseError, match=r"wh_test.evolving lacks the column 'weight'"):
            other.ensure(required)
    finally:
        other.dispose()


def test_has_table_is_false_for_a_table_that_is_not_there(warehouse: Warehouse) -> None:
    warehouse.ensure(EVENTS)
    missing = sa.Table("missing", sa.MetaData(schema="wh_test"), sa.Column("x", sa.Integer))
    elsewhere = sa.Table("events", sa.MetaData(schema="wh_nowhere"), sa.Column("x", sa.Integer))
    assert not warehouse.has_table(missing)
    assert not warehouse.has_table(elsewhere)


# ----------------------------------------------------------------------------- partitions
def test_replace_partition_replaces_one_partition_and_leaves_the_others(
    warehouse: Warehouse,
) -> None:
    warehouse.ensure(EVENTS)
    assert warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(0, 5))) == 5
    assert warehouse.replace_partition(EVENTS, {"part": D2}, _events(D2, range(100, 103))) == 3
    d2 = _partition(warehouse, D2)

    assert warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(10, 12), "new")) == 2
    assert _counts(warehouse) == {D1: 2, D2: 3}
    assert _partition(warehouse, D1) == _events(D1, range(10, 12), "new").to_pylist()
    assert _partition(warehouse, D2) == d2

    # Session.replace: several partitions named by a list, and a second key column.
    with warehouse.transaction() as session:
        written = session.replace(
            EVENTS,
            {"part": [D1, D3]},
            pa.concat_tables([_events(D1, range(20, 21), "list"), _events(D3, range(30, 34))]),
        )
    assert written == 5
    assert _counts(warehouse) == {D1: 1, D2: 3, D3: 4}
    assert _partition(warehouse, D2) == d2
    with warehouse.transaction() as session:
        session.delete(EVENTS, {"part": D3, "id": 31})
        session.delete(EVENTS, {"part": []})  # no partition named: nothing deleted
    assert [r["id"] for r in _partition(warehouse, D3)] == [30, 32, 33]
    assert _counts(warehouse) == {D1: 1, D2: 3, D3: 3}


def test_insert_conforms_arrow_types_and_round_trips_values_exactly(warehouse: Warehouse) -> None:
    warehouse.ensure(EVENTS)
    narrow = pa.table(
        {
            # int32 into BIGINT, list<string> into ARRAY(String); no small, score, flag, at
            "id": pa.array([3, 1, 2], pa.int32()),
            "part": pa.array([D1, D1, D1], pa.date32()),
            "label": pa.array(["x", None, "é ünï ✓ '?'"], pa.string()),
            "tags": pa.array([["a", "b"], [], None], pa.list_(pa.string())),
        }
    )
    full = pa.table(
        {
            "part": pa.array([D2, D2], pa.date32()),
            "id": pa.array([2**40, -(2**62)], pa.int64()),
            "small": pa.array([2**31 - 1, -(2**31)], pa.int32()),
            "score": pa.array([1 / 3, 1e-300], pa.float64()),
            "label": pa.array(["", "line\nbreak"], pa.string()),
            "flag": pa.array([True, False], pa.bool_()),
            "seen_at": pa.array(
                [dt.datetime(2025, 3, 2, 23, 59, 59, 999_999), dt.datetime(1999, 12, 31)],
                pa.timestamp("us"),
            ),
            "tags": pa.array([["only"], ["with", None, "null"]], pa.list_(pa.string())),
        }
    )
    with warehouse.transaction() as session:
        assert session.insert(EVENTS, narrow) == 3
        assert session.insert(EVENTS, full) == 2
        assert session.insert(EVENTS, narrow.slice(0, 0)) == 0

    expected = [
        {
            "part": D1,
            "id": i,
            "small": None,
            "score": None,
            "label": label,
            "flag": None,
            "seen_at": None,
            "tags": tags,
        }
        for i, label, tags in [(1, None, []), (2, "é ünï ✓ '?'", None), (3, "x", ["a", "b"])]
    ] + sorted(full.to_pylist(), key=lambda r: r["id"])
    expected.sort(key=lambda r: (r["part"], r["id"]))

    got = warehouse.arrow(SELECT_EVENTS)
    assert got.schema.names == [c.name for c in EVENTS.columns]
    assert got.schema.types == arrow_schema(EVENTS).types  # int64 id, int32 small, list<string>
    assert got.to_pylist() == expected
    assert warehouse.rows(SELECT_EVENTS) == expected
    assert warehouse.frame(SELECT_EVENTS)["id"].tolist() == [r["id"] for r in expected]


def test_insert_names_a_missing_required_column_and_writes_nothing(warehouse: Warehouse) -> None:
    warehouse.ensure(EVENTS)
    warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(4)))
    before = warehouse.rows(SELECT_EVENTS)
    with pytest.raises(ValueError, match="wh_test.events: no values for column 'part'"):
        warehouse.replace_partition(
            EVENTS, {"part": D1}, pa.table({"id": pa.array([1], pa.int64())})
        )
    assert warehouse.rows(SELECT_EVENTS) == before


def test_a_transaction_that_fails_midway_leaves_the_previous_partition(
    warehouse: Warehouse,
) -> None:
    warehouse.ensure(EVENTS, KEYED)
    warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(50)))
    warehouse.replace_partition(EVENTS, {"part": D2}, _events(D2, range(100, 110)))
    before = warehouse.rows(SELECT_EVENTS)
    seen_meanwhile: list[dict] = []

    with pytest.raises(RuntimeError, match="midway"), warehouse.transaction() as session:
        session.delete(EVENTS, {"part": D1})
        session.insert(EVENTS, _events(D1, range(1000, 1025), "half"))
        session.execute("INSERT INTO wh_other.keyed (name, value) VALUES (?, ?)", ["a", 1])
        # Another session meanwhile sees the committed partition, not the half-written one.
        seen_meanwhile = warehouse.rows(SELECT_EVENTS)
        raise RuntimeError("midway")

    assert seen_meanwhile == before
    assert warehouse.rows(SELECT_EVENTS) == before
    assert warehouse.rows("SELECT * FROM wh_other.keyed") == []
    # The connection it used is clean: the next transaction commits normally.
    warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(7), "next"))
    assert _counts(warehouse) == {D1: 7, D2: 10}


# ----------------------------------------------------------------------------- SQL and errors
def test_question_mark_placeholders(warehouse: Warehouse) -> None:
    [row] = warehouse.tuples(
        "SELECT ? AS a, '?' AS q, 'it''s a ?' AS r, ? AS b, 1 AS \"what?\"", [1, "x"]
    )
    assert row == (1, "?", "it's a ?", "x", 1)
    assert warehouse.rows('SELECT 2 AS "what?", ? AS c', [dt.date(2025, 1, 2)]) == [
        {"what?": 2, "c": dt.date(2025, 1, 2)}
    ]

    warehouse.ensure(EVENTS)
    with warehouse.transaction() as session:
        session.executemany(
            "INSERT INTO wh_test.events (part, id, label) VALUES (?, ?, ?)",
            [[D1, 1, "?"], [D1, 2, "plain"], [D2, 3, "?"]],
        )
    found = warehouse.tuples(
        "SELECT id FROM wh_test.events WHERE part = ? AND label = '?' AND id > ? ORDER BY id",
        [D1, 0],
    )
    assert found == [(1,)]
    assert warehouse.tuples(
        "SELECT count(*) FROM wh_test.events WHERE label IN (?, '?')", ["plain"]
    ) == [(3,)]


def test_arrow_reads_give_the_same_values_whether_parameters_are_inlined_or_bound(
    warehouse: Warehouse,
) -> None:
    """PostgreSQL inlines numbers, dates, timestamps, booleans and NULL as literals (ADBC
    then streams the result by COPY); text stays bound. Either way the rows are the
    parameters' values, on both engines, and quoted question marks are left alone."""
    values = [
        -3,
        2.5e-05,
        dt.date(2025, 1, 2),
        dt.datetime(2025, 1, 2, 3, 4, 5, 678000),
        True,
        None,
    ]
    sql = (
        "SELECT 10 -? AS a, cast(? as double precision) AS b, cast(? as date) AS c, "
        "cast(? as timestamp) AS d, cast(? as boolean) AS e, cast(? as integer) AS f, "
        "'?' AS q"
    )
    assert warehouse.arrow(sql, values).to_pylist() == [
        {
            "a": 13,
            "b": 2.5e-05,
            "c": dt.date(2025, 1, 2),
            "d": dt.datetime(2025, 1, 2, 3, 4, 5, 678000),
            "e": True,
            "f": None,
            "q": "?",
        }
    ]
    text = "x'); DROP TABLE nothing; --"
    assert warehouse.arrow("SELECT ? AS t, ? AS n", [text, 1]).to_pylist() == [{"t": text, "n": 1}]


def test_a_missing_table_is_missing_table(warehouse: Warehouse) -> None:
    with pytest.raises(MissingTable):
        warehouse.rows("SELECT * FROM wh_test.nope")
    with pytest.raises(MissingTable):
        warehouse.arrow("SELECT * FROM nowhere.nope WHERE x = ?", [1])
    with pytest.raises(MissingTable):
        warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(2)))
    warehouse.ensure(EVENTS)
    with pytest.raises(MissingTable), warehouse.transaction() as session:
        session.insert(EVENTS, _events(D1, range(2)))
        session.execute("DELETE FROM wh_test.nope")
    assert _counts(warehouse) == {}  # the insert before the error was rolled back


def test_a_not_null_violation_in_a_statement_is_constraint_violation(warehouse: Warehouse) -> None:
    warehouse.ensure(EVENTS)
    warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(3)))
    before = warehouse.rows(SELECT_EVENTS)
    with pytest.raises(ConstraintViolation), warehouse.transaction() as session:
        session.execute("DELETE FROM wh_test.events WHERE part = ?", [D1])
        session.execute("INSERT INTO wh_test.events (part, id) VALUES (?, ?)", [D1, None])
    assert warehouse.rows(SELECT_EVENTS) == before


def test_a_not_null_violation_in_arrow_rows_is_constraint_violation(warehouse: Warehouse) -> None:
    """The bulk path (Arrow insert) reports a constraint as the statement path does, and
    the partition it was replacing stays as it was."""
    warehouse.ensure(EVENTS)
    warehouse.replace_partition(EVENTS, {"part": D1}, _events(D1, range(3)))
    before = warehouse.rows(SELECT_EVENTS)
    broken = _events(D1, range(10, 15), "new")
    broken = broken.set_column(1, "id", pa.array([10, 11, None, 13, 14], pa.int64()))
    with pytest.raises(ConstraintViolation):
        warehouse.replace_partition(EVENTS, {"part": D1}, broken)
    assert warehouse.rows(SELECT_EVENTS) == before


# ----------------------------------------------------------------------------- the raw store
def _usage(day: dt.date, rows: int) -> pa.Table:
    return valid_table(USAGE_DAILY, day, rows, seed=day.toordinal())


def _sorted(table: pa.Table, keys: list[str]) -> pa.Table:
    return table.sort_by([(k, "ascending") for k in keys])


def test_raw_store_writes_whole_partitions_and_reads_the_same_on_both_engines(
    warehouse: Warehouse,
) -> None:
    raw = RawStore(warehouse)
    # Nothing loaded yet: every read says so (no raw schema at all).
    assert raw.row_counts("usage_daily") == {}
    assert raw.loaded_days(D1, D3) == {}
    assert raw.first_loaded_day() is None
    assert raw.recent_row_counts("usage_daily", D3, 5) == []
    assert raw.row_count("usage_daily", D1) is None

    sizes = {D1: 50, D2: 40, D3: 30}
    began = utc_now()
    written = raw.replace_partitions(
        USAGE_DAILY,
        [
            Partition(day, _usage(day, n), [f"usage_daily/dt={day}/part-0.parquet"])
            for day, n in sizes.items()
        ],
    )
    churn_day = Partition(
        D2, valid_table(CHURN_EVENTS, D2, 1).slice(0, 0), []
    )  # a loaded day, no rows
    assert raw.replace_partitions(CHURN_EVENTS, [churn_day]) == 0
    finished = utc_now()
    assert written == 120

    drops = warehouse.rows(
        "SELECT table_name, drop_date, row_count, source_files, loaded_at "
        f"FROM {LOADED_DROPS.schema}.{LOADED_DROPS.name} ORDER BY table_name, drop_date"
    )
    assert [{k: v for k, v in d.items() if k != "loaded_at"} for d in drops] == [
        {"table_name": "churn_events", "drop_date": D2, "row_count": 0, "source_files": ""},
        *(
            {
                "table_name": "usage_daily",
                "drop_date": day,
                "row_count": n,
                "source_files": f"usage_daily/dt={day}/part-0.parquet",
            }
            for day, n in sizes.items()
        ),
    ]
    usage_loaded_at = {d["loaded_at"] for d in drops if d["table_name"] == "usage_daily"}
    assert len(usage_loaded_at) == 1  # one load, one timestamp
    assert all(began <= d["loaded_at"] <= finished for d in drops)
    lineage = warehouse.tuples(
        "SELECT _drop_date, _source_file, count(*), count(DISTINCT _loaded_at) "
        "FROM raw.usage_daily GROUP BY _drop_date, _source_file ORDER BY _drop_date"
    )
    assert lineage == [
        (day, f"usage_daily/dt={day}/part-0.parquet", n, 1) for day, n in sizes.items()
    ]

    assert raw.row_counts("usage_daily") == sizes
    assert raw.row_counts("churn_events") == {D2: 0}
    assert raw.loaded_days(D1, D2) == {"usage_daily": {D1, D2}, "churn_events": {D2}}
    assert raw.loaded_days(D3, D3 + dt.timedelta(days=9)) == {"usage_daily": {D3}}
    assert raw.first_loaded_day() == D1
    assert raw.recent_row_counts("usage_daily", D3, 5) == [40, 50]
    assert raw.recent_row_counts("usage_daily", D3 + dt.timedelta(days=1), 2) == [30, 40]
    assert raw.row_count("usage_daily", D2) == 40
    assert raw.row_count("usage_daily", D3 + dt.timedelta(days=1)) is None
    keys = ["customer_id", "usage_date"]
    columns = list(USAGE_DAILY.column_names)
    for day, n in sizes.items():
        stored = _sorted(raw.partition("usage_daily", day).select(columns), keys)
        landed = _sorted(_usage(day, n).select(columns).cast(USAGE_DAILY.arrow_schema()), keys)
        assert stored.schema.types == landed.schema.types
        assert stored.to_pylist() == landed.to_pylist()

    # A rerun of one day replaces it, rows and record; the other days stay as they were.
    d1, d3 = raw.partition("usage_daily", D1), raw.partition("usage_daily", D3)
    raw.replace_partition(USAGE_DAILY, D2, _usage(D2, 20), ["a.parquet", "b.parquet"])
    assert raw.row_counts("usage_daily") == {D1: 50, D2: 20, D3: 30}
    assert raw.partition("usage_daily", D2).num_rows == 20
    assert set(raw.partition("usage_daily", D2).column("_source_file").to_pylist()) == {
        "a.parquet,b.parquet"
    }
    assert raw.partition("usage_daily", D1).equals(d1)
    assert raw.partition("usage_daily", D3).equals(d3)
    assert raw.row_counts("churn_events") == {D2: 0}


def test_raw_partitions_read_back_identical_from_both_engines(
    tmp_path: Path, postgres_dsn: str
) -> None:
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

    engines = [DuckDBWarehouse(tmp_path / "warehouse.duckdb"), PostgresWarehouse(postgres_dsn)]
    try:
        read = []
        for engine in engines:
            raw = RawStore(engine)
            raw.replace_partitions(
                USAGE_DAILY, [Partition(day, _usage(day, 25), ["f"]) for day in (D1, D2)]
            )
            table = engine.arrow(
                "SELECT * FROM raw.usage_daily ORDER BY _drop_date, customer_id, usage_date"
            )
            read.append(table.drop_columns(["_loaded_at"]))
            assert table.schema.types == arrow_schema(raw_table("usage_daily")).types
        duck, postgres = read
        assert duck.schema.equals(postgres.schema)
        assert duck.equals(postgres)
    finally:
        for engine in engines:
            engine.dispose()


# ----------------------------------------------------------------------------- PostgreSQL
SECRET = "s3cr3t-value"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _messages(error: BaseException) -> str:
    """The text of an error and of every error chained to it."""
    texts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts += [str(current), repr(current)]
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def _missing_database() -> tuple[str, str, int, str]:
    name = f"churnops_missing_{uuid.uuid4().hex[:10]}"
    return f"postgresql://postgres:{SECRET}@127.0.0.1:5432/{name}", "127.0.0.1", 5432, name


def _nothing_listening() -> tuple[str, str, int, str]:
    port = _free_port()
    return f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/nodb", "127.0.0.1", port, "nodb"


UNREACHABLE = {"missing_database": _missing_database, "nothing_listening": _nothing_listening}


@pytest.mark.parametrize("case", sorted(UNREACHABLE))
@pytest.mark.parametrize("operation", ["check", "rows", "ensure", "replace_partition"])
def test_an_unreachable_postgres_is_one_line_naming_what_to_check(
    case: str, operation: str
) -> None:
    dsn, host, port, database = UNREACHABLE[case]()
    warehouse = PostgresWarehouse(dsn)
    actions = {
        "check": warehouse.check,
        "rows": lambda: warehouse.rows("SELECT ? AS x", [1]),
        "ensure": lambda: warehouse.ensure(EVENTS),
        "replace_partition": lambda: warehouse.replace_partition(
            EVENTS, {"part": D1}, _events(D1, range(2))
        ),
    }
    try:
        with pytest.raises(WarehouseUnavailable) as caught:
            actions[operation]()
    finally:
        warehouse.dispose()
    message = str(caught.value)
    assert "\n" not in message.strip(), message
    assert host in message and str(port) in message and database in message, message
    assert "CHURNOPS_POSTGRES_DSN" in message
    if case == "missing_database":
        assert "does not exist" in message
    assert SECRET not in _messages(caught.value)
    assert SECRET not in warehouse.describe()


def test_a_database_that_does_not_exist_without_a_password(postgres_dsn: str) -> None:
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/churnops_never_created"
    with pytest.raises(WarehouseUnavailable, match="churnops_never_created") as caught:
        PostgresWarehouse(dsn).check()
    assert "127.0.0.1:5432" in str(caught.value) and "CHURNOPS_POSTGRES_DSN" in str(caught.value)
    PostgresWarehouse(postgres_dsn).check()  # the one that exists answers


@pytest.mark.parametrize("case", sorted(UNREACHABLE))
def test_cli_status_on_an_unreachable_postgres_exits_with_one_line(
    case: str, tmp_path: Path
) -> None:
    dsn, host, _, database = UNREACHABLE[case]()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNOPS_")}
    env |= {
        "CHURNOPS_WAREHOUSE": "postgres",
        "CHURNOPS_POSTGRES_DSN": dsn,
        "CHURNOPS_STATE_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [str(Path(sys.executable).with_name("churnops")), "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("churnops status: ")
    assert host in lines[0] and database in lines[0], lines[0]
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_a_statement_timeout_on_a_reachable_postgres_is_not_reported_as_unreachable(
    postgres_dsn: str,
) -> None:
    """An operational error of the statement (here a timeout, SQLSTATE 57014) is not a
    connection problem: it must not send the user to check the DSN."""
    import adbc_driver_manager

    warehouse = PostgresWarehouse(postgres_dsn)
    try:
        with (
            pytest.raises(adbc_driver_manager.OperationalError, match="statement timeout"),
            warehouse.session() as session,
        ):
            session.execute("SET statement_timeout = 50")
            session.tuples("SELECT pg_sleep(2)")
        assert warehouse.tuples("SELECT 1") == [(1,)]  # the pool still serves
    finally:
        warehouse.dispose()


def test_the_postgres_sessions_get_the_work_mem_and_jit_settings_after_the_dsns_options(
    postgres_dsn: str, tmp_path: Path
) -> None:
    """CHURNOPS_POSTGRES_WORK_MEM and CHURNOPS_POSTGRES_JIT_ABOVE_COST (all three JIT
    thresholds) reach the warehouse's own data sessions, and options the DSN carries stay
    in force."""
    from churnops.settings import load_settings
    from churnops.warehouse import build_warehouse

    dsn = f"{postgres_dsn}?options=-c%20statement_timeout%3D600000"
    settings = load_settings(
        {
            "CHURNOPS_WAREHOUSE": "postgres",
            "CHURNOPS_POSTGRES_DSN": dsn,
            "CHURNOPS_POSTGRES_WORK_MEM": "80MB",
            "CHURNOPS_POSTGRES_JIT_ABOVE_COST": "2500000",
            "CHURNOPS_STATE_DIR": str(tmp_path),
        }
    )
    warehouse = build_warehouse(settings.warehouse)
    try:
        assert warehouse.tuples(
            "select current_setting('work_mem'), current_setting('statement_timeout'), "
            "current_setting('jit_above_cost'), current_setting('jit_inline_above_cost'), "
            "current_setting('jit_optimize_above_cost')"
        ) == [("80MB", "10min", "2.5e+06", "2.5e+06", "2.5e+06")]
    finally:
        warehouse.dispose()


def test_both_engines_put_every_customer_in_the_shard_numpy_computes(
    warehouse: Warehouse,
) -> None:
    """The shard each store query selects in SQL is the shard churnops.sharding computes
    (ids near the 64-bit and 31-bit edges and below zero included)."""
    import numpy as np

    from churnops.sharding import shard_of, sql_expression

    edge = [-(2**62), -(2**31), -7, -1, 0, 1, 2**31 - 2, 2**31 - 1, 2**31, 2**62, 2**63 - 1]
    ids = np.array([*edge, *range(1, 5_001)], dtype=np.int64)
    table = sa.Table("shard_ids", sa.MetaData(schema="test"), sa.Column("id", sa.BigInteger))
    warehouse.ensure(table)
    with warehouse.transaction() as session:
        session.insert(table, pa.table({"id": pa.array(ids, pa.int64())}))
    for count in (1, 3, 4, 16):
        rows = warehouse.tuples(f"SELECT id, {sql_expression('id', count)} FROM test.shard_ids")
        in_sql = dict(rows)
        expected = dict(zip(ids.tolist(), shard_of(ids, count).tolist(), strict=True))
        assert in_sql == expected, count


_PROGRESS_BAR_SETTINGS = """
import sys
from pathlib import Path

import duckdb

from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

path, read_only = sys.argv[1], sys.argv[2] == "read-only"
setting = "select current_setting('enable_progress_bar')"
with duckdb.connect(path) as plain:  # creates the file for the read-only case
    print("plain", plain.execute(setting).fetchone()[0])
warehouse = DuckDBWarehouse(Path(path), read_only=read_only)
print("tuples", warehouse.tuples(setting)[0][0])
print("arrow", warehouse.arrow(setting).column(0)[0].as_py())
if not read_only:
    with warehouse.transaction() as session:
        print("transaction", session.tuples(setting)[0][0])
"""


@pytest.mark.parametrize("mode", ["read-write", "read-only"])
def test_duckdb_sessions_draw_no_progress_bar(tmp_path: Path, mode: str) -> None:
    """DuckDB's progress bar is on in a new connection; the engine's sessions and
    transactions turn it off (else a long query writes a bar of carriage returns into a
    task's log). In a process of its own: inside pytest's, DuckDB starts with it off."""
    run = subprocess.run(
        [sys.executable, "-c", _PROGRESS_BAR_SETTINGS, str(tmp_path / "warehouse.duckdb"), mode],
        capture_output=True,
        text=True,
        check=True,
    )
    seen = dict(line.split() for line in run.stdout.splitlines())
    assert seen.pop("plain") == "True"  # the control: DuckDB's own default
    assert seen == (
        {"tuples": "False", "arrow": "False"}
        | ({"transaction": "False"} if mode == "read-write" else {})
    )
