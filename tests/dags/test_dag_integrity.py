"""Every DAG imports cleanly, documents itself, retries, and parses fast without I/O."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

DAGS_DIR = PROJECT_DIR / "dags"
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(str(DAGS_DIR))


def test_every_dag_file_imports_without_errors(dagbag) -> None:
    assert DAG_FILES, "no DAG files found"
    assert dagbag.import_errors == {}


def test_one_dag_per_file_named_after_it(dagbag) -> None:
    for path in DAG_FILES:
        dags = [d for d in dagbag.dags.values() if Path(d.fileloc) == path]
        assert [d.dag_id for d in dags] == [path.stem]


# Tasks that must not retry by themselves: a second attempt would register a second model
# version or move an alias twice. Every other task retries.
NO_AUTOMATIC_RETRY = {
    "churn_retrain.retrain_and_decide",
    "churn_model_promote.promote",
    "churn_model_rollback.rollback",
}


def test_dags_have_docs_tags_owner_and_retries(dagbag) -> None:
    assert {"churn_nightly", "churn_retrain", "churn_model_promote", "churn_model_rollback"} <= set(
        dagbag.dag_ids
    )
    for dag in dagbag.dags.values():
        assert dag.tags and "churnops" in dag.tags, dag.dag_id
        assert dag.doc_md and len(dag.doc_md) > 200, dag.dag_id
        for task in dag.tasks:
            name = f"{dag.dag_id}.{task.task_id}"
            assert task.owner == "ml-platform", name
            if "watcher" in task.task_type.lower():
                continue  # Cosmos' watcher tasks: its producer must not retry, sensors mirror it
            if name in NO_AUTOMATIC_RETRY:
                assert task.retries == 0, f"{name} must not retry on its own"
            else:
                assert task.retries >= 1, f"{name} has no retries"


def test_retrain_dag_runs_on_asset_or_monthly(dagbag) -> None:
    dag = dagbag.dags["churn_retrain"]
    assert dag.max_active_runs == 1
    assert dag.timetable.asset_condition.name == "retrain_requested"
    assert dag.timetable.timetable.expression == "0 4 1 * *"


def test_nightly_dag_shape(dagbag) -> None:
    dag = dagbag.dags["churn_nightly"]
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    groups = {t.task_id.split(".")[0] for t in dag.tasks}
    assert {"ingest", "features"} <= groups
    ingest = [t for t in dag.tasks if t.task_id.startswith("ingest.")]
    writers = {t.task_id: t.pool for t in ingest if t.task_id != "ingest.wait_for_drops"}
    assert set(writers.values()) == {"churnops_warehouse"}, writers
    sensor = dag.get_task("ingest.wait_for_drops")
    assert sensor.mode == "reschedule"  # waiting for late drops holds no worker slot
    models = {t.task_id for t in dag.tasks if t.task_id.startswith("features.")}
    assert any("fct_customer_features" in m for m in models)
    assert any("fct_churn_labels" in m for m in models)
    # the features only start once the day is loaded and its 90-day window complete
    gate = dag.get_task("ingest.check_window_loaded")
    assert models <= gate.get_flat_relative_ids(upstream=False)
    # scoring reads the night's features: it runs after every model, and writes the
    # warehouse through its pool
    score = dag.get_task("score")
    assert {m for m in models if "fct_customer_features" in m} <= score.get_flat_relative_ids(
        upstream=True
    )
    assert score.pool == "churnops_warehouse"


def test_watcher_tasks_poke_outside_the_warehouse_pool(dagbag) -> None:
    """Watcher mode (the default): only the producer runs dbt and takes the warehouse slot;
    the per-model tasks poke for its results in the worker instead of deferring (a trigger
    firing at once races the executor in Airflow 3.3, see churnops.orchestration.dbt)."""
    features = [t for t in dagbag.dags["churn_nightly"].tasks if t.task_id.startswith("features.")]
    producer = dagbag.dags["churn_nightly"].get_task("features.dbt_producer_watcher")
    assert producer.pool == "churnops_warehouse"
    mirrors = [t for t in features if hasattr(t, "deferrable") and t is not producer]
    assert len(mirrors) >= 14  # a task per model, and one per model's tests
    for task in mirrors:
        assert task.pool == "default_pool" and task.deferrable is False, task.task_id
        assert task.mode == "poke" and task.poke_interval <= 5, task.task_id


PARSE_PROBE = textwrap.dedent(
    """
    import json, socket, sys, time
    def refuse(*args, **kwargs):
        raise RuntimeError("a connection was opened while parsing DAGs")
    socket.socket.connect = refuse
    socket.create_connection = refuse
    import duckdb
    duckdb.connect = refuse
    import sqlite3
    sqlite3.connect = refuse
    from airflow.dag_processing.dagbag import DagBag
    path = sys.argv[1]
    began = time.perf_counter()
    bag = DagBag(path)
    cold = time.perf_counter() - began
    began = time.perf_counter()
    DagBag(path)
    warm = time.perf_counter() - began
    print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                      "dags": sorted(bag.dag_ids), "cold": cold, "warm": warm}))
    """
)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_opens_no_connection_and_fits_airflows_import_timeout(path: Path) -> None:
    """Parse each file in a fresh interpreter whose DB, DuckDB and socket connects all raise."""
    result = subprocess.run(
        [sys.executable, "-c", PARSE_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert report["dags"] == [path.stem]
    # The dag-processor abandons a file that takes longer than this to import; how fast
    # parsing is (cold and warm) is measured by `make bench BENCH=dags`, not asserted here.
    from airflow.configuration import conf

    limit = conf.getfloat("core", "dagbag_import_timeout")
    assert report["cold"] < limit, f"{path.name} cold parse {report['cold']:.2f}s"
