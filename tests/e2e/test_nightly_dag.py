"""The nightly DAG, run for real with dag.test() on a short simulated history."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import duckdb
import pytest

from churnops.contracts import LANDING_TABLES
from churnops.landing import drop_files
from churnops.settings import SimulationSettings, load_settings
from churnops.simulate import simulate_days
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.e2e

START = dt.date(2025, 1, 1)
SIM = SimulationSettings(customers=800, seed=3, history_start=START, history_days=10)


@pytest.fixture(scope="module")
def nightly_env(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    state = tmp_path_factory.mktemp("nightly-state")
    old = dict(os.environ)
    os.environ.update(
        {
            "CHURNOPS_STATE_DIR": str(state),
            "CHURNOPS_SIM_CUSTOMERS": str(SIM.customers),
            "CHURNOPS_DUCKDB_PATH": str(state / "warehouse.duckdb"),
            # dag.test() runs tasks one at a time: Cosmos' watcher sensors need their
            # producer running beside them, so here dbt runs as one task (the scheduler
            # test in test_closed_loop.py covers the watcher shape).
            "CHURNOPS_DBT_EXECUTION": "build",
        }
    )
    settings = load_settings()
    simulate_days(SIM, START, START + dt.timedelta(days=4), settings.paths.landing_dir)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(str(PROJECT_DIR / "dags" / "churn_nightly.py")).dags["churn_nightly"]
    yield settings, dag
    os.environ.clear()
    os.environ.update(old)


def run_night(dag, day: dt.date):
    run = dag.test(logical_date=dt.datetime.combine(day, dt.time(2, 30), tzinfo=dt.UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run.state, states


def snapshot(settings) -> dict[str, list[tuple]]:
    """Every raw and mart table, sorted, without load timestamps."""
    tables = {}
    with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
        for table in LANDING_TABLES:
            tables[f"raw.{table}"] = con.execute(
                f"SELECT * EXCLUDE (_loaded_at) FROM raw.{table} ORDER BY ALL"
            ).fetchall()
        for mart in ("fct_customer_features", "fct_churn_labels"):
            tables[mart] = con.execute(f"SELECT * FROM marts.{mart} ORDER BY ALL").fetchall()
    return tables


def test_nights_load_raw_and_build_features(nightly_env) -> None:
    settings, dag = nightly_env
    for offset in range(3):
        day = START + dt.timedelta(days=offset)
        state, tasks = run_night(dag, day)
        assert state == "success", {k: v for k, v in tasks.items() if v != "success"}
        assert tasks["features.dbt_build"] == "success"
        # No model has been trained in this warehouse: scoring (and all after it) skips,
        # and the night is still a success.
        not_run = {k: v for k, v in tasks.items() if v != "success"}
        assert not_run and set(not_run.values()) == {"skipped"}, not_run
        assert {"score.plan", "score.shard", "score.publish"} <= set(not_run)

    import pyarrow.parquet as pq

    with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
        for table in LANDING_TABLES:
            for offset in range(3):
                day = START + dt.timedelta(days=offset)
                landed = pq.read_table(drop_files(settings.paths.landing_dir, table, day)[0])
                loaded = con.execute(
                    f"SELECT count(*) FROM raw.{table} WHERE _drop_date = ?", [day]
                ).fetchone()[0]
                assert loaded == landed.num_rows, (table, day)
        per_day = dict(
            con.execute(
                "SELECT as_of_date, count(*) FROM marts.fct_customer_features GROUP BY 1"
            ).fetchall()
        )
        usage = dict(
            con.execute("SELECT _drop_date, count(*) FROM raw.usage_daily GROUP BY 1").fetchall()
        )
        dupes = con.execute(
            "SELECT count(*) FROM (SELECT as_of_date, customer_id FROM marts.fct_customer_features "
            "GROUP BY ALL HAVING count(*) > 1)"
        ).fetchone()[0]
    # one feature row per active customer (every active customer has a usage row that day)
    assert per_day == {
        START + dt.timedelta(days=i): usage[START + dt.timedelta(days=i)] for i in range(3)
    }
    assert dupes == 0


def test_rerunning_a_night_changes_nothing(nightly_env) -> None:
    settings, dag = nightly_env
    before = snapshot(settings)
    state, _ = run_night(dag, START + dt.timedelta(days=1))
    assert state == "success"
    assert snapshot(settings) == before


def test_a_bad_drop_fails_the_night_and_loads_nothing(nightly_env) -> None:
    from churnops.simulate import Corruption

    settings, dag = nightly_env
    day = START + dt.timedelta(days=3)
    simulate_days(
        SIM, day, day, settings.paths.landing_dir, [Corruption(day, "out_of_range", "invoices")]
    )
    before = snapshot(settings)
    state, tasks = run_night(dag, day)
    assert state == "failed"
    assert tasks["ingest.validate_and_load"] == "failed"
    assert all(
        v in {"upstream_failed", None} for k, v in tasks.items() if k.startswith("features.")
    )
    after = snapshot(settings)
    assert after["raw.invoices"] == before["raw.invoices"]
    assert after["fct_customer_features"] == before["fct_customer_features"]
    assert (
        settings.paths.quarantine_dir / "invoices" / f"dt={day}" / "validation_result.json"
    ).exists()
