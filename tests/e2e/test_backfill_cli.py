"""`airflow backfill create` over a simulated range, executed by a real scheduler."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import duckdb
import pytest

from churnops.orchestration.local_airflow import running_airflow
from churnops.settings import SimulationSettings, load_settings
from churnops.simulate import simulate_days

pytestmark = pytest.mark.e2e

START = dt.date(2025, 1, 1)
NIGHTS = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_backfill_create_runs_every_night_through_the_scheduler(tmp_path: Path) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path / "state")})
    sim = SimulationSettings(customers=500, seed=9, history_start=START)
    last = START + dt.timedelta(days=NIGHTS - 1)
    simulate_days(sim, START, last, settings.paths.landing_dir)

    with running_airflow(settings, port=free_port()) as airflow:
        airflow.wait_until(lambda: "churn_nightly" in airflow.dag_ids(), 180, "the DAG to parse")
        airflow.backfill_days("churn_nightly", START, last)
        # (the scheduler also starts the latest scheduled night, which has no drops: ignored)
        runs = airflow.wait_for_runs(
            "churn_nightly", NIGHTS, timeout=900, run_id_prefix="backfill__"
        )

    assert len(runs) == NIGHTS
    assert {r["state"] for r in runs} == {"success"}, runs
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as con:
        loaded = con.execute(
            "SELECT DISTINCT drop_date FROM raw._loaded_drops ORDER BY 1"
        ).fetchall()
        features = dict(
            con.execute(
                "SELECT as_of_date, count(*) FROM marts.fct_customer_features GROUP BY 1"
            ).fetchall()
        )
    days = [START + dt.timedelta(days=i) for i in range(NIGHTS)]
    assert [d for (d,) in loaded] == days
    assert sorted(features) == days and min(features.values()) > 400
