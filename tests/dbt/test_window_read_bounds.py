"""The nightly's windowed reads on PostgreSQL read the window's days, not the whole history.

raw.usage_daily and raw.support_tickets grow by a day of rows every night, and PostgreSQL
stores them as rows: a read bounded only by the event date scans every day ever loaded
(DuckDB skips row groups by their min/max). Every read of them also bounds ``drop_date``
(the partition key, indexed on PostgreSQL; an event's date is its drop day for every
loaded row, the validation gate refuses any other): from below in the usage frames of a
long bootstrap (``int_usage_windowed_by_frames``) and in the tickets model
(``int_support_tickets_windowed``), by the days no tile covers in the nightly's usage
(``int_usage_windowed_per_date``), and by the stale smallest tiles' days in the tiles' build
(``int_usage_tiles``). So a night at the end of a long history reads its days through the
index. The plan is checked on a real PostgreSQL with a year of synthetic rows; the
control is the same query without that bound, which must scan the table.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration

NIGHT = dt.date(2025, 12, 31)
HISTORY_DAYS = 365
CUSTOMERS = 3_000
# The lines of each model that bound the partition key, rendered: from below (the usage
# and tickets windows of several dates), by the window's days read from rows (a night's
# usage, beside its tiles), by the stale tiles' days (the tiles' build).
LOWER_DROP_DATE_BOUND = re.compile(r"\n\s*and drop_date > cast\('[0-9-]+' as date\)")
ROW_DAYS_DROP_DATE_BOUND = re.compile(r"\n\s*and \(drop_date between [^\n]*")
# The tiles' whole where clause: the stale tiles' days are their only bound.
STALE_TILES_DROP_DATE_BOUND = re.compile(
    r"\n\s*where\s+usage_days\.drop_date\s*>= \(select min\(stale_tiles_[0-9]+\.tile_start\)"
    r" from stale_tiles_[0-9]+\)\s+and usage_days\.drop_date\s*<= \(select max\("
    r"stale_tiles_[0-9]+\.tile_end\) from stale_tiles_[0-9]+\)"
)


@pytest.fixture(scope="module")
def year_of_rows() -> Iterator[str]:
    """A database with raw.usage_daily and raw.support_tickets as the raw store creates
    them (the drop_date index included), each holding a year of a row per customer per
    day, analysed, and the as-of date and active customer tables the models read."""
    from churnops.ingest.store import LOADED_DROPS, raw_table
    from churnops.warehouse.postgres_warehouse import PostgresWarehouse

    with fresh_postgres_database("churnops_usage_bounds") as dsn:
        warehouse = PostgresWarehouse(dsn)
        try:
            warehouse.ensure(raw_table("usage_daily"), raw_table("support_tickets"), LOADED_DROPS)
            first = NIGHT - dt.timedelta(days=HISTORY_DAYS - 1)
            every_customer_every_day = f"""
                select cast(days.day as date) as day, customers.customer
                from generate_series(date '{first}', date '{NIGHT}', interval '1 day') as days (day)
                cross join generate_series(1, {CUSTOMERS}) as customers (customer)
            """
            with warehouse.transaction() as session:
                session.execute(
                    f"""
                    insert into raw.usage_daily
                    select customer, day, 3, 0.5, 1, 10.0, 2, day, 'usage_daily.parquet',
                        timestamp '2026-01-01 00:00:00'
                    from ({every_customer_every_day}) as rows_
                    """
                )
                session.execute(
                    f"""
                    insert into raw.support_tickets
                    select 'T' || customer || '-' || day, customer, day + time '09:30',
                        'billing', 'low', 'email', day, 'support_tickets.parquet',
                        timestamp '2026-01-01 00:00:00'
                    from ({every_customer_every_day}) as rows_
                    """
                )
                session.execute(
                    f"""
                    insert into raw._loaded_drops
                    select 'usage_daily', cast(days.day as date), {CUSTOMERS}, 'usage_daily.parquet',
                        timestamp '2026-01-01 00:00:00'
                    from generate_series(date '{first}', date '{NIGHT}', interval '1 day')
                        as days (day)
                    """
                )
                session.execute("create schema intermediate")
                session.execute("create table intermediate.int_as_of_dates (as_of_date date)")
                session.execute(f"insert into intermediate.int_as_of_dates values (date '{NIGHT}')")
                session.execute(
                    "create table intermediate.int_customers_snapshotted "
                    "(as_of_date date, customer_id bigint)"
                )
                session.execute(
                    "insert into intermediate.int_customers_snapshotted "
                    f"select date '{NIGHT}', customer from generate_series(1, {CUSTOMERS}) "
                    "as customers (customer)"
                )
            with warehouse.engine.connect() as connection:
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(
                    sa.text("analyze")
                )
        finally:
            warehouse.dispose()
        yield dsn


# Each windowed model: the models a night builds before it, the raw table it reads, the
# rendered bound(s) on the partition key, and what PostgreSQL's index condition shows.
WINDOWED_MODELS = {
    # The nightly's usage: its tiles and the days no tile covers.
    "int_usage_windowed_per_date": (
        ("stg_raw__usage_days", "stg_raw__loaded_drops", "int_usage_tiles"),
        "usage_daily",
        ROW_DAYS_DROP_DATE_BOUND,
        "(_drop_date >= '",
    ),
    "int_usage_tiles": (
        ("stg_raw__usage_days", "stg_raw__loaded_drops"),
        "usage_daily",
        STALE_TILES_DROP_DATE_BOUND,
        "(_drop_date >= $",  # the stale tiles' first day, an InitPlan's parameter
    ),
    "int_usage_windowed_by_frames": (
        ("stg_raw__usage_days",),
        "usage_daily",
        LOWER_DROP_DATE_BOUND,
        f"(_drop_date > '{NIGHT - dt.timedelta(days=90)}'::date)",
    ),
    "int_support_tickets_windowed": (
        ("stg_raw__support_tickets",),
        "support_tickets",
        LOWER_DROP_DATE_BOUND,
        f"(_drop_date > '{NIGHT - dt.timedelta(days=90)}'::date)",
    ),
}


def _compiled_model(dsn: str, work_dir: Path, model: str) -> str:
    """A windowed model as dbt renders it for NIGHT on PostgreSQL (what it reads built
    first, as a night's build does)."""
    from churnops.features import run_dbt
    from churnops.settings import load_settings

    settings = load_settings(
        {
            "CHURNOPS_STATE_DIR": str(work_dir),
            "CHURNOPS_WAREHOUSE": "postgres",
            "CHURNOPS_POSTGRES_DSN": dsn,
        }
    )
    target = work_dir / "target"
    night = {"as_of_date": NIGHT.isoformat()}
    before, *_ = WINDOWED_MODELS[model]
    run_dbt(settings, "run", ["--select", *before], night, str(target))
    run_dbt(settings, "compile", ["--select", model], night, str(target))
    return (target / f"compiled/churnops/models/intermediate/{model}.sql").read_text()


def _plan(dsn: str, sql: str) -> dict:
    """PostgreSQL's plan of ``sql`` (JSON, without JIT), its top node."""
    engine = sa.create_engine(dsn.replace("postgresql://", "postgresql+psycopg2://"))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("set jit = off"))
            plan = connection.execute(sa.text(f"explain (format json) {sql}")).scalar_one()
    finally:
        engine.dispose()
    plan = plan if isinstance(plan, list) else json.loads(plan)
    return plan[0]["Plan"]


def _nodes(node: dict) -> Iterator[dict]:
    """A plan node and every node under it."""
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _raw_scans(dsn: str, sql: str, raw: str) -> list[dict]:
    """The plan nodes that read raw.<raw>."""
    return [node for node in _nodes(_plan(dsn, sql)) if node.get("Relation Name") == raw]


@pytest.mark.parametrize("model", sorted(WINDOWED_MODELS))
def test_a_night_reads_a_years_history_through_the_drop_date_index(
    year_of_rows: str, tmp_path: Path, model: str
) -> None:
    _, raw, bound, index_condition = WINDOWED_MODELS[model]
    compiled = _compiled_model(year_of_rows, tmp_path, model)
    assert bound.search(compiled), f"no partition-key bound in the rendered {model}"

    scans = _raw_scans(year_of_rows, compiled, raw)
    assert scans, f"the plan reads no raw.{raw}"
    for scan in scans:
        assert scan["Node Type"] in {"Index Scan", "Bitmap Heap Scan"}, scan["Node Type"]
    conditions = " ".join(
        str(node.get(key, ""))
        for scan in scans
        for node in [scan, *scan.get("Plans", [])]
        for key in ("Index Cond", "Recheck Cond")
    )
    assert index_condition in conditions, conditions

    # The control: without the bound, the same read scans the whole table.
    unbounded = bound.sub("", compiled)
    assert unbounded != compiled
    assert {scan["Node Type"] for scan in _raw_scans(year_of_rows, unbounded, raw)} == {"Seq Scan"}


def test_the_tiles_build_hashes_its_days_rows(year_of_rows: str, tmp_path: Path) -> None:
    """The smallest tiles' aggregation of the days' rows is a hash aggregate.

    PostgreSQL cannot count the stale tiles ahead (their bounds are the query's own
    parameters): with a second range on usage_date, or the stale tiles joined before the
    GROUP BY, it estimated 1,136 rows of the 2,000,000 a night's tile reads at
    500,000 customers, and sorted them (int_usage_tiles). Here: the first build of a
    year's last window, 270,000 rows of 3,000 customers.
    """
    compiled = _compiled_model(year_of_rows, tmp_path, "int_usage_tiles")
    aggregates = [
        node
        for node in _nodes(_plan(year_of_rows, compiled))
        if node["Node Type"] == "Aggregate"
        and any(below.get("Relation Name") == "usage_daily" for below in _nodes(node))
    ]
    assert aggregates, "no aggregation of raw.usage_daily in the tiles' plan"
    assert {node["Strategy"] for node in aggregates} == {"Hashed"}, [
        (node["Strategy"], node.get("Group Key")) for node in aggregates
    ]
