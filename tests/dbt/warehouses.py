"""Warehouses for the dbt tests: a small simulated raw history, and dbt builds on it.

The fixtures that build them are in ``conftest.py`` (one raw history and one bootstrap
build per session, shared by the DuckDB and the PostgreSQL tests).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnops.contracts import LANDING_TABLES
from churnops.landing import drop_files
from churnops.settings import SimulationSettings

if TYPE_CHECKING:
    from churnops.features import DbtRun

PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
START = dt.date(2025, 1, 1)
DAYS = 120  # the labels of the first 30 as-of dates mature inside the history
END = START + dt.timedelta(days=DAYS - 1)
MARTS = ("fct_customer_features", "fct_churn_labels")
INTERMEDIATES = (
    "int_as_of_dates",
    "int_customers_snapshotted",
    "int_usage_windowed",
    "int_support_tickets_windowed",
    "int_invoices_windowed",
)
# The schema of each model (dbt_project.yml) and the columns that make its rows unique.
# Intermediate tables without an as_of_date: what the run knows by its as_of_end.
KNOWN_BY_AS_OF_END = ("int_churn_events_known",)
SCHEMAS = {
    **dict.fromkeys(INTERMEDIATES + KNOWN_BY_AS_OF_END, "intermediate"),
    **dict.fromkeys(MARTS, "marts"),
}
KEYS = {name: ["as_of_date", "customer_id"] for name in SCHEMAS} | {
    "int_as_of_dates": ["as_of_date"],
    "int_churn_events_known": ["customer_id"],
}


def days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def simulate_raw_history(root: Path) -> Path:
    """A DuckDB file whose raw layer holds DAYS simulated daily drops of every table,
    loaded the way ingest loads them (one ``_drop_date`` partition per table per day)."""
    from churnops.ingest.store import Partition, RawStore
    from churnops.simulate import simulate_days
    from churnops.warehouse.duckdb_warehouse import DuckDBWarehouse

    settings = SimulationSettings(customers=300, seed=23, history_start=START, history_days=DAYS)
    simulate_days(settings, START, END, root / "landing")
    # Not "raw.duckdb": DuckDB names the catalog after the file, which would shadow schema raw.
    path = root / "template.duckdb"
    warehouse = DuckDBWarehouse(path)
    try:
        store = RawStore(warehouse)
        for name, contract in LANDING_TABLES.items():
            partitions = []
            for day in days(START, END):
                files = drop_files(root / "landing", name, day)
                assert files, f"the simulator wrote no {name} drop for {day}"
                rows = pa.concat_tables([pq.read_table(f) for f in files])
                partitions.append(Partition(day, rows, [f.name for f in files]))
            store.replace_partitions(contract, partitions)
    finally:
        warehouse.dispose()
    return path


def dbt_build_on(
    warehouse_env: Mapping[str, str], work_dir: Path, dbt_vars: dict[str, str]
) -> DbtRun:
    """``dbt build`` in-process through the product's path (``churnops.features.run_dbt``)
    against the warehouse the ``CHURNOPS_*`` settings in ``warehouse_env`` name, unit tests
    included (the nightly leaves them out: this suite is where they run). Raises DbtFailed
    with dbt's messages."""
    from churnops.features import run_dbt
    from churnops.settings import load_settings

    settings = load_settings({"CHURNOPS_STATE_DIR": str(work_dir), **warehouse_env})
    run_dir = work_dir / f"dbt-{len(list(work_dir.glob('dbt-*')))}"
    return run_dbt(settings, "build", dbt_vars_=dbt_vars, target_path=str(run_dir / "target"))


def dbt_build(warehouse: Path, work_dir: Path, dbt_vars: dict[str, str]) -> DbtRun:
    """``dbt build`` on the DuckDB file ``warehouse`` (target local)."""
    return dbt_build_on({"CHURNOPS_DUCKDB_PATH": str(warehouse)}, work_dir, dbt_vars)


def query(warehouse: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse))
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def query_arrow(warehouse: Path, sql: str) -> pa.Table:
    con = duckdb.connect(str(warehouse))
    try:
        return con.sql(sql).to_arrow_table()
    finally:
        con.close()


def mart(warehouse: Path, name: str) -> pd.DataFrame:
    frame = query(warehouse, f"select * from marts.{name} order by as_of_date, customer_id")
    return frame.reset_index(drop=True)


def copy_warehouse(warehouse: Path, folder: Path) -> Path:
    # dbt-duckdb keeps the database open in this process: write the WAL into the file
    # first, or the copy misses the last build.
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("checkpoint")
    finally:
        con.close()
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / "warehouse.duckdb"
    shutil.copyfile(warehouse, copy)
    return copy
