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
            "CHURNOPS_SIM_SEED": str(SIM.seed),  # the live feed goes on in the same world
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


def test_a_night_through_airflows_cli_writes_every_tasks_lineage(nightly_env) -> None:
    """`airflow dags test` (a fresh process: the OpenLineage listener is set up from the
    project's environment at start) over a night that is already loaded, with the
    lineage the local profile turns on: every task that ran has its START and COMPLETE
    event, with the datasets it read and wrote."""
    import subprocess
    import sys

    from churnops.lineage import events_file, night_lineage, read_events
    from churnops.orchestration.environment import openlineage_env

    settings, _ = nightly_env
    day = START + dt.timedelta(days=2)
    env = {**os.environ, **openlineage_env(settings, {})}
    airflow = Path(sys.executable).with_name("airflow")
    proc = subprocess.run(
        [str(airflow), "dags", "test", "churn_nightly", f"{day}T02:30:00+00:00"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    events = list(read_events(events_file(settings)))
    tasks: dict[str, set[str]] = {}
    for event in events:
        if event["job"]["facets"]["jobType"]["jobType"] == "TASK":
            tasks.setdefault(event["job"]["name"], set()).add(event["eventType"])
    ran = {
        "churn_nightly.ingest.wait_for_drops",
        "churn_nightly.ingest.validate_and_load",
        "churn_nightly.ingest.check_window_loaded",
        "churn_nightly.features.dbt_build",
        "churn_nightly.score.plan",  # skipped: no champion in this warehouse
    }
    assert ran <= set(tasks), sorted(tasks)
    for name in ran:
        assert {"START", "COMPLETE"} <= tasks[name], (name, tasks[name])

    night = night_lineage(settings, day)
    assert night is not None
    drops = {
        f"file://{(settings.paths.landing_dir / table / f'dt={day}').absolute()}"
        for table in LANDING_TABLES
    }
    assert set(night.drops) == drops
    assert set(night.raw_tables) == {f"raw.{table}" for table in LANDING_TABLES}
    build = night.feature_build
    assert build is not None and build.tasks == ("features.dbt_build",)
    assert {"marts.fct_customer_features", "marts.fct_churn_labels"} <= set(build.models)
    assert set(build.sources) == {f"raw.{table}" for table in LANDING_TABLES}
    # No champion yet: the plan read no model, nothing was published.
    assert night.model_versions == () and night.predictions == () and not night.scored
    by_task = {t.task_id: t for t in night.tasks if t.state == "COMPLETE"}
    warehouse = f"duckdb://{settings.warehouse.duckdb_path}"
    loaded = by_task["ingest.validate_and_load"]
    assert {d.namespace for d in loaded.inputs} == {"file"}
    assert {(d.namespace, d.name.split(".", 1)[1]) for d in loaded.outputs} == {
        (warehouse, f"raw.{table}") for table in LANDING_TABLES
    }
    # Another night's question finds nothing of this one.
    assert night_lineage(settings, day + dt.timedelta(days=30)) is None


def test_the_demo_feed_lands_the_next_day_for_the_nightly_and_starts_its_night(
    nightly_env,
) -> None:
    """churn_source_simulator through dag.test(): it lands every table's drop of the day
    after the newest one, which the nightly's sensor accepts, and starts that night's
    run with the logical date the nightly's schedule gives the day."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import DagRun

    from churnops.landing import missing_drops
    from churnops.orchestration.feed import unreachable_night
    from churnops.simulate.feed import landing_position

    settings, _ = nightly_env
    landing = settings.paths.landing_dir
    before = landing_position(landing, LANDING_TABLES)
    assert before == START + dt.timedelta(days=4)  # the module's last simulated day
    day = before + dt.timedelta(days=1)
    # Before the feed runs, the nightly of the day after next cannot get its drops: its
    # sensor skips it at once instead of waiting hours.
    later = day + dt.timedelta(days=1)
    assert unreachable_night(later) and f"dt={later}" in unreachable_night(later)

    feed = DagBag(str(PROJECT_DIR / "dags" / "churn_source_simulator.py")).dags[
        "churn_source_simulator"
    ]
    run = feed.test(logical_date=dt.datetime(2025, 1, 20, 0, 15, tzinfo=dt.UTC))
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert run.state == "success", states
    assert states == {"land_next_day": "success", "start_the_night": "success"}

    assert landing_position(landing, LANDING_TABLES) == day
    assert missing_drops(landing, list(LANDING_TABLES), day) == []  # the sensor's test
    assert unreachable_night(day) is None and unreachable_night(later) is None
    assert drop_files(landing, "usage_daily", day)

    (night,) = DagRun.find(dag_id="churn_nightly", run_id=f"feed__{day}")
    assert night.logical_date == dt.datetime.combine(day, dt.time(2, 30), tzinfo=dt.UTC)
