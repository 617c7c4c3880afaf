"""``engines``: DuckDB and PostgreSQL side by side on the same rows (see ``bench_engines``):
the nightly and training groups' set-ups (``bench.nightly``, ``bench.train``) build the
state on DuckDB, the tables each stage reads are copied into fresh PostgreSQL databases
(``CHURNOPS_BENCH_POSTGRES`` names the server), and each stage is timed on both, with
PG/DuckDB and the issue's targets (met / NOT MET) printed beside the figures.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Iterator
from pathlib import Path

from bench.harness import (
    BENCH_CUSTOMERS,
    NIGHTLY_HISTORY_DAYS,
    NIGHTLY_STATE_ENV,
    TRAIN_STATE_ENV,
    bench_settings,
    feature_store,
    kept_state,
    measure,
    postgres_server,
    raw_store,
    selected_engine_stages,
)
from bench.nightly import nightly_features, nightly_ingest, prepare_history
from bench.score import score_champion, score_night_stage
from bench.train import TRAIN_SNAPSHOTS, prepare_training_history, train_params

# The targets.
ENGINE_RATIO_TARGET = 2.0  # PostgreSQL within 2x of DuckDB, stage by stage
TRAIN_FRAME_TARGET_S = 8.0  # the training frame on DuckDB
USAGE_WRITE_TARGET_S = 5.0  # one night's usage_daily into PostgreSQL
COPY_BATCH_DAYS = 5  # raw partitions copied per batch (500k customers: ~2.5M usage rows)
ENGINE_STAGES = ("ingest", "dbt", "usage", "score", "frame")


def postgres_dsn(database: str) -> str:
    """``CHURNOPS_BENCH_POSTGRES`` (a server URL, default this machine's) with ``database``."""
    from sqlalchemy.engine import make_url

    return make_url(postgres_server()).set(database=database).render_as_string(hide_password=False)


def _admin(sql: str) -> None:
    """One statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    import sqlalchemy as sa

    engine = sa.create_engine(
        postgres_dsn("postgres").replace("postgresql://", "postgresql+psycopg2://", 1),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(sql))
    finally:
        engine.dispose()


# The daily tables a night's features read only within the 90-day window (its last invoice
# and that invoice's payments included: invoices are monthly).
WINDOWED_TABLES = ("usage_daily", "invoices", "payments", "support_tickets")


def copy_to_postgres(
    state: str, dsn: str, raw_before: str | None, marts: bool, raw_from: str | None = None
) -> dict:
    """Untimed set-up: the tables a stage reads, copied from the DuckDB state to PostgreSQL.

    Through the warehouse layer: ``Warehouse.arrow`` on DuckDB, ``Session.insert`` (binary
    COPY) on PostgreSQL, a few partitions per batch so memory stays bounded. Raw tables
    get their DDL from ``RawStore.ensure``; with ``raw_before`` every raw table's drops
    before that day are copied, else only ``raw._loaded_drops`` (all of it). With
    ``raw_from`` the daily tables (``WINDOWED_TABLES``) start on that day; ``customers``
    and ``churn_events`` are always whole: who the customers are and who has left is
    known only from every day since the feed began. With
    ``marts``, dbt's two marts are created from their Arrow schema (``adbc_ingest``,
    mode "create") and copied one as-of date at a time. Then ANALYZE, as autovacuum would.
    """
    from churnops.contracts import LANDING_TABLES
    from churnops.features.store import (
        AS_OF_WRITES_TABLE,
        FEATURES_TABLE,
        LABEL_COUNTS_TABLE,
        LABELS_TABLE,
    )
    from churnops.ingest.store import LOADED_DROPS, LOADED_DROPS_TABLE, raw_table

    source = raw_store(bench_settings(state)).warehouse
    target_raw = raw_store(bench_settings(state, dsn))
    target = target_raw.warehouse
    target_raw.ensure()
    copied: dict[str, int] = {}

    def copy_rows(sql: str, params: list, table) -> None:
        data = source.arrow(sql, params)
        if data.num_rows:
            with target.transaction() as session:
                session.insert(table, data)
        name = f"{table.schema}.{table.name}"
        copied[name] = copied.get(name, 0) + data.num_rows

    if raw_before is None:
        copy_rows(f"SELECT * FROM {LOADED_DROPS_TABLE}", [], LOADED_DROPS)
    else:
        night = dt.date.fromisoformat(raw_before)
        copy_rows(f"SELECT * FROM {LOADED_DROPS_TABLE} WHERE drop_date < ?", [night], LOADED_DROPS)
        for name in LANDING_TABLES:
            table = raw_table(name)
            days = [
                d
                for (d,) in source.tuples(
                    f"SELECT DISTINCT _drop_date FROM raw.{name} "
                    "WHERE _drop_date < ? AND _drop_date >= ? ORDER BY 1",
                    [
                        night,
                        dt.date.fromisoformat(raw_from)
                        if raw_from and name in WINDOWED_TABLES
                        else dt.date.min,
                    ],
                )
            ]
            for i in range(0, len(days), COPY_BATCH_DAYS):
                batch = days[i : i + COPY_BATCH_DAYS]
                copy_rows(
                    f"SELECT * FROM raw.{name} WHERE _drop_date BETWEEN ? AND ?",
                    [batch[0], batch[-1]],
                    table,
                )
    if marts:
        for mart in (FEATURES_TABLE, LABELS_TABLE):
            schema, name = mart.split(".")
            dates = [d for (d,) in source.tuples(f"SELECT DISTINCT as_of_date FROM {mart}")]
            with target.transaction() as session:
                session.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            for i, day in enumerate(sorted(dates)):
                data = source.arrow(f"SELECT * FROM {mart} WHERE as_of_date = ?", [day])
                with target.transaction() as session:
                    # dbt owns the marts' DDL: no Table object to ensure, so the first batch
                    # creates the table from its Arrow schema, the others append.
                    session.cursor.adbc_ingest(  # type: ignore[attr-defined]
                        name, data, mode="create" if i == 0 else "append", db_schema_name=schema
                    )
                copied[mart] = copied.get(mart, 0) + data.num_rows
            with target.transaction() as session:
                # The index dbt-postgres creates with the mart (macros/cross_db.sql:
                # postgres__mart_indexes), so the stages read the copy as they would dbt's.
                session.execute(
                    f"CREATE UNIQUE INDEX ON {mart} USING btree (as_of_date, customer_id)"
                )
        # The marts' write log, which the training snapshots' copies are fingerprinted by,
        # and the label counts, which a training plans its snapshots on (both small).
        for kept in (AS_OF_WRITES_TABLE, LABEL_COUNTS_TABLE):
            rows = source.arrow(f"SELECT * FROM {kept}")
            with target.transaction() as session:
                session.cursor.adbc_ingest(  # type: ignore[attr-defined]
                    kept.split(".")[1], rows, mode="create", db_schema_name="marts"
                )
            copied[kept] = rows.num_rows
    with target.transaction() as session:  # committed: a rolled-back ANALYZE keeps no statistics
        session.execute("ANALYZE")
    return {"rows": sum(copied.values()), **{f"{k}_rows": v for k, v in copied.items()}}


def usage_partition_write(state: str, night: str, dsn: str | None = None) -> dict:
    """Timed: ``RawStore.replace_partition`` of the night's usage_daily (over the night's
    rows the ingest loaded: delete, COPY / insert, ``_loaded_drops``, one transaction).
    The rows are read from the DuckDB state first, outside the clock."""
    from churnops.contracts import contract_for

    day = dt.date.fromisoformat(night)
    contract = contract_for("usage_daily")
    rows = raw_store(bench_settings(state)).partition("usage_daily", day)
    rows = rows.select(list(contract.column_names))
    raw = raw_store(bench_settings(state, dsn))
    raw.ensure([contract])
    raw.warehouse.check()  # the first connection (and driver import) is not the write's
    began = time.perf_counter()
    written = raw.replace_partition(contract, day, rows, ["bench"])
    return {"seconds": time.perf_counter() - began, "rows": written}


def training_frame_load(
    state: str, dsn: str | None = None, as_training: bool = True, copies: str = "off"
) -> dict:
    """Timed: the training frame with the train group's params (12 monthly snapshots).

    ``as_training``: what ``retrain`` reads (``load_split``: the split planned on the
    labels, then only the snapshots it uses loaded, and split); else every snapshot
    (``load_training_frame`` without windows). ``copies``: "off" reads every row from the
    warehouse; "cold" removes the snapshots' columnar copies first, so the load reads the
    warehouse and writes them (what the first training after a bootstrap does); "warm"
    reads the copies a "cold" run on the same engine left (what a training does once the
    nightly has copied each matured snapshot).
    """
    from churnops.features.store import FeatureStore
    from churnops.storage import remove_tree
    from churnops.train.frame import load_split, load_training_frame

    settings = bench_settings(state, dsn)
    features = feature_store(settings)
    assert features.copies is not None
    if copies == "off":
        features = FeatureStore(features.warehouse)
    elif copies == "cold":
        remove_tree(features.copies.folder)
    features.warehouse.check()
    params = train_params(settings)
    began = time.perf_counter()
    if as_training:
        split = load_split(features, params=params)
        seconds = time.perf_counter() - began
        rows = sum(rows for rows, _ in split.counts().values())
        return {
            "seconds": seconds,
            "rows": rows,
            "columns": split.train.shape[1],
            "snapshots_loaded": sum(
                part["as_of_date"].nunique() for part in (split.train, split.validation, split.test)
            ),
            "snapshots": split.windows.snapshots,
            "copies": copies,
        }
    frame = load_training_frame(features, params=params)
    seconds = time.perf_counter() - began
    return {
        "seconds": seconds,
        "rows": len(frame),
        "columns": frame.shape[1],
        "snapshots": frame["as_of_date"].nunique(),
        "copies": copies,
    }


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _side_by_side(
    stage: str,
    duck: dict,
    pg: dict,
    pg_target_s: float | None = None,
    parts: tuple[str, ...] = (),
) -> list[tuple[str, dict]]:
    """The two engines' rows and a third: PG/DuckDB on ``seconds`` (the target) and on
    each of ``parts`` (shown, not judged)."""
    ratio = pg["seconds"] / duck["seconds"]
    summary: dict[str, object] = {
        "seconds": pg["seconds"],
        "peak_rss_mb": pg["peak_rss_mb"],
        "duckdb_s": duck["seconds"],
        "postgres_s": pg["seconds"],
        "duckdb_peak_mb": round(duck["peak_rss_mb"]),
        "pg/duckdb": f"{ratio:.2f}x",
        f"target PG <= {ENGINE_RATIO_TARGET:g}x": _verdict(ratio <= ENGINE_RATIO_TARGET),
    }
    for part in parts:
        summary[f"{part} pg/duckdb"] = (
            f"{pg[part]:.2f}/{duck[part]:.2f} = {pg[part] / duck[part]:.2f}x"
        )
    if pg_target_s is not None:
        summary[f"target PG <= {pg_target_s:g} s"] = _verdict(pg["seconds"] <= pg_target_s)
    return [
        (f"{stage}: DuckDB", duck),
        (f"{stage}: PostgreSQL", pg),
        (f"{stage}: PG/DuckDB (seconds = PG)", summary),
    ]


def bench_engines(tmp: Path) -> Iterator[tuple[str, dict]]:
    """DuckDB and PostgreSQL side by side on the same rows.

    The state is built once on DuckDB by the nightly and training set-ups (kept in
    ``CHURNOPS_BENCH_NIGHTLY_STATE`` / ``CHURNOPS_BENCH_TRAIN_STATE`` when set), then the
    tables each stage reads are copied into two fresh PostgreSQL databases (dropped at the
    end); only the stages are timed, each in its own child process. A generator: each
    figure is printed as soon as it is measured. ``CHURNOPS_BENCH_ENGINE_STAGES`` (comma
    separated, default all of ``ENGINE_STAGES``) picks stages; only their set-ups run.
    """
    nightly_state = kept_state(NIGHTLY_STATE_ENV, tmp / "nightly")
    train_state = kept_state(TRAIN_STATE_ENV, tmp / "train")
    mlflow_dir = str(tmp / "mlflow-engines")
    stages = selected_engine_stages(ENGINE_STAGES)
    nightly = bool({"ingest", "dbt", "usage"} & set(stages))
    training = bool({"score", "frame"} & set(stages))
    n = f"{BENCH_CUSTOMERS:,} customers"
    suffix = f"{os.getpid()}_{int(time.time())}"
    databases: list[str] = []
    try:
        if nightly:
            nightly_setup = measure(prepare_history, nightly_state, NIGHTLY_HISTORY_DAYS)
            night = nightly_setup["night"]
            databases.append(f"churnops_bench_nightly_{suffix}")
            _admin(f"CREATE DATABASE {databases[-1]}")
            nightly_dsn = postgres_dsn(databases[-1])
            copy_nightly = measure(copy_to_postgres, nightly_state, nightly_dsn, night, False)
            yield from [
                (
                    f"(set-up, untimed) DuckDB: {NIGHTLY_HISTORY_DAYS} days loaded, night {night}",
                    nightly_setup,
                ),
                (f"(set-up, untimed) copy to PostgreSQL: raw before {night}", copy_nightly),
            ]
        if training:
            train_setup = measure(prepare_training_history, train_state)
            databases.append(f"churnops_bench_train_{suffix}")
            _admin(f"CREATE DATABASE {databases[-1]}")
            train_dsn = postgres_dsn(databases[-1])
            copy_train = measure(copy_to_postgres, train_state, train_dsn, None, True)
            yield from [
                (f"(set-up, untimed) DuckDB: the training bench's state, {n}", train_setup),
                ("(set-up, untimed) copy to PostgreSQL: marts + raw._loaded_drops", copy_train),
            ]
        if "ingest" in stages:
            yield from _side_by_side(
                f"ingest+validate night {night}",
                measure(nightly_ingest, nightly_state, night),
                measure(nightly_ingest, nightly_state, night, nightly_dsn),
            )
        if "dbt" in stages:
            if "ingest" not in stages:  # the night's drops must be loaded before its build
                measure(nightly_ingest, nightly_state, night)
                measure(nightly_ingest, nightly_state, night, nightly_dsn)
            # Untimed: the night before, so the timed night finds what a nightly finds in
            # production, the usage tiles of its window that earlier runs built (the copy
            # to PostgreSQL has none; the bootstrap builds them for its last date).
            eve = (dt.date.fromisoformat(night) - dt.timedelta(days=1)).isoformat()
            yield from [
                (
                    f"(set-up, untimed) dbt build night {eve}: DuckDB",
                    measure(nightly_features, nightly_state, eve),
                ),
                (
                    f"(set-up, untimed) dbt build night {eve}: PostgreSQL",
                    measure(nightly_features, nightly_state, eve, nightly_dsn),
                ),
            ]
            yield from _side_by_side(
                f"dbt build night {night}",
                measure(nightly_features, nightly_state, night),
                measure(nightly_features, nightly_state, night, nightly_dsn),
            )
        if "usage" in stages:
            duck = measure(usage_partition_write, nightly_state, night)
            pg = measure(usage_partition_write, nightly_state, night, nightly_dsn)
            yield from _side_by_side(
                f"usage_daily partition {night} ({pg['rows']:,} rows), RawStore.replace_partition",
                duck,
                pg,
                pg_target_s=USAGE_WRITE_TARGET_S,
            )
        if "frame" in stages:
            every = f"load_training_frame, all {TRAIN_SNAPSHOTS} monthly snapshots"
            split = "load_split, the snapshots training uses (as retrain loads)"
            target = f"target <= {TRAIN_FRAME_TARGET_S:g} s"
            for as_training, what in ((False, every), (True, split)):
                duck = measure(training_frame_load, train_state, None, as_training)
                pg = measure(training_frame_load, train_state, train_dsn, as_training)
                yield from _side_by_side(
                    f"{what}, from the warehouse (no copies) ({duck['rows']:,} rows)",
                    duck | {target: _verdict(duck["seconds"] <= TRAIN_FRAME_TARGET_S)},
                    pg,
                )
            # Through the snapshots' columnar copies: each engine's cold load (writes them),
            # then its warm loads (read them), before the other engine's cold load.
            runs: dict[str, dict[str, dict]] = {}
            for engine, dsn in (("duck", None), ("pg", train_dsn)):
                runs[engine] = {
                    "cold": measure(training_frame_load, train_state, dsn, False, "cold"),
                    "warm": measure(training_frame_load, train_state, dsn, False, "warm"),
                    "split": measure(training_frame_load, train_state, dsn, True, "warm"),
                }
            for key, what in (
                ("cold", f"{every}, copies cold (read the warehouse, write the copies)"),
                ("warm", f"{every}, copies warm (the training frame as the nightly keeps it)"),
                ("split", f"{split}, copies warm"),
            ):
                duck, pg = runs["duck"][key], runs["pg"][key]
                yield from _side_by_side(
                    f"{what} ({duck['rows']:,} rows)",
                    duck | {target: _verdict(duck["seconds"] <= TRAIN_FRAME_TARGET_S)},
                    pg,
                )
        if "score" in stages:
            champion = measure(score_champion, train_state, mlflow_dir)
            yield (f"(set-up, untimed) champion v{champion['version']}", champion)
            measure(score_night_stage, train_state, mlflow_dir, False)  # untimed: compiles once
            yield from _side_by_side(
                f"score_day, latest night, {n}",
                measure(score_night_stage, train_state, mlflow_dir, False),
                measure(score_night_stage, train_state, mlflow_dir, False, train_dsn),
                parts=("stage_s (read+predict+write)", "read_features_s", "stage_s", "publish_s"),
            )
    finally:
        for database in databases:
            _admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
