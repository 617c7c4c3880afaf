"""An outage fails the first nightly task that needs the unreachable thing, and its log
says why in one line: the real churn_nightly DAG, run with dag.test()."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

DAY = dt.date(2025, 1, 1)


@pytest.fixture
def nightly(airflow_db: Path, tmp_path: Path) -> Iterator[object]:
    old = dict(os.environ)
    os.environ.update(
        {
            "CHURNOPS_STATE_DIR": str(tmp_path / "state"),
            "CHURNOPS_TASK_RETRIES": "0",
            "CHURNOPS_DBT_EXECUTION": "build",
        }
    )
    from airflow.dag_processing.dagbag import DagBag

    from churnops import storage

    storage._shared.cache_clear()
    yield DagBag(str(PROJECT_DIR / "dags" / "churn_nightly.py")).dags["churn_nightly"]
    os.environ.clear()
    os.environ.update(old)
    storage._shared.cache_clear()


def _run(dag, capfd: pytest.CaptureFixture[str]) -> tuple[str, dict[str, str | None], str]:
    run = dag.test(logical_date=dt.datetime.combine(DAY, dt.time(2, 30), tzinfo=dt.UTC))
    out, err = capfd.readouterr()
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    return run.state, states, out + err


def test_a_worker_that_cannot_see_the_shared_path_fails_wait_for_drops_in_one_line(
    nightly, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "not-mounted"
    os.environ["CHURNOPS_DATA_URL"] = f"file://{missing}"
    state, tasks, log = _run(nightly, capfd)
    assert state == "failed"
    assert tasks["ingest.wait_for_drops"] == "failed"
    assert tasks["ingest.validate_and_load"] == "upstream_failed"
    line = f"SharedPathUnavailable: the shared data path file://{missing} is not reachable"
    errors = [row for row in log.splitlines() if line in row]
    assert errors, log[-3000:]
    assert "CHURNOPS_DATA_URL" in errors[0] and "mounted" in errors[0]
    assert not missing.exists()


def test_an_unreachable_warehouse_fails_validate_and_load_in_one_line(
    nightly, tmp_path: Path, capfd: pytest.CaptureFixture[str], small_sim
) -> None:
    import socket

    from churnops.simulate import simulate_days

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    simulate_days(small_sim, DAY, DAY, tmp_path / "state" / "data" / "landing")
    os.environ["CHURNOPS_WAREHOUSE"] = "postgres"
    os.environ["CHURNOPS_POSTGRES_DSN"] = f"postgresql://postgres:pw-secret@127.0.0.1:{port}/db"
    state, tasks, log = _run(nightly, capfd)
    assert state == "failed"
    assert tasks["ingest.wait_for_drops"] == "success"
    assert tasks["ingest.validate_and_load"] == "failed"
    errors = [row for row in log.splitlines() if "WarehouseUnavailable: cannot reach" in row]
    assert errors, log[-3000:]
    assert f"127.0.0.1:{port}" in errors[0] and "CHURNOPS_POSTGRES_DSN" in errors[0]
    assert "pw-secret" not in log
