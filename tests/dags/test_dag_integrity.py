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
            # Cosmos' watcher tasks too: the producer builds again on a retry, and the
            # per-model tasks then mirror that build (test_watcher_* below).
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
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk.definitions.mappedoperator import MappedOperator

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
    # The churn events known by the night are one model (a task of its own, no tests) that
    # both the active customers and the labels read.
    known_churn = "features.int_churn_events_known_run"
    for reader in ("int_customers_snapshotted", "fct_churn_labels"):
        assert known_churn in dag.get_task(f"features.{reader}.run").upstream_task_ids, reader
    # The two usage computations are ephemeral (inlined into int_usage_windowed): no-op
    # tasks that keep the lineage and never run dbt.
    for computation in ("int_usage_windowed_per_date", "int_usage_windowed_by_frames"):
        task = dag.get_task(f"features.{computation}_run")
        assert isinstance(task, EmptyOperator), computation
        assert task.task_id in dag.get_task("features.int_usage_windowed.run").upstream_task_ids
    # the features only start once the day is loaded and its 90-day window complete
    gate = dag.get_task("ingest.check_window_loaded")
    assert models <= gate.get_flat_relative_ids(upstream=False)
    # scoring reads the night's features: it is planned after every model, its shards are
    # mapped over the plan, the night is published after every shard and monitored after
    # that; each step writes the warehouse through its pool
    plan, shard, publish = (dag.get_task(f"score.{t}") for t in ("plan", "shard", "publish"))
    assert {m for m in models if "fct_customer_features" in m} <= plan.get_flat_relative_ids(
        upstream=True
    )
    assert plan.downstream_task_ids == {"score.shard", "score.publish"}
    assert isinstance(shard, MappedOperator) and shard.downstream_task_ids == {"score.publish"}
    assert shard.map_index_template == "{{ shard_label }}"
    assert publish.downstream_task_ids == {"monitor.drift_and_performance"}
    assert {t.pool for t in (plan, shard, publish)} == {"churnops_warehouse"}
    # the columnar copy of tonight's matured snapshot: after the labels are built, beside
    # the scoring (nothing waits for it)
    copies = dag.get_task("training_copies")
    assert {m for m in models if "fct_churn_labels" in m} <= copies.get_flat_relative_ids(
        upstream=True
    )
    assert copies.pool == "churnops_warehouse" and not copies.downstream_task_ids
    assert dag.params["scoring_shards"] is None  # the settings' shard count unless asked


# Tasks that never open the warehouse (every other task does, or runs dbt, and takes the
# one-slot pool: DuckDB admits one writing process, and a reader is refused while it writes).
NO_WAREHOUSE = {
    "churn_nightly.ingest.wait_for_drops": "looks for the landing folders only",
    "churn_retrain.monthly_retrain_due": "reads the MLflow registry only",
    "churn_retrain.announce_promotion": "emits the asset event only",
    "churn_source_simulator.land_next_day": "writes landing drops only",
    "churn_source_simulator.start_the_night": "triggers a nightly run only",
    "churn_rollout.needs_approval": "reads the evaluation's XCom only",
    "churn_rollout.approval": "waits for a person (the answer goes to the metadata DB)",
}
WAREHOUSE_POOL = "churnops_warehouse"


def test_every_task_that_opens_the_warehouse_or_runs_dbt_takes_the_pool(dagbag) -> None:
    """A task's pool is the same on every try: a writer outside the pool is a lock error
    waiting for the first retry or clear. Cosmos' per-model watcher tasks stay outside
    (they never run dbt, and one of them holding the only slot while waiting for the
    producer would deadlock the night); the no-op gates (EmptyOperator) take nothing."""
    from airflow.providers.standard.operators.empty import EmptyOperator

    from churnops.orchestration.watcher import MirrorOnly

    pools: dict[str, set[str]] = {}
    for dag in dagbag.dags.values():
        for task in dag.tasks:
            name = f"{dag.dag_id}.{task.task_id}"
            if name in NO_WAREHOUSE or isinstance(task, MirrorOnly | EmptyOperator):
                assert task.pool == "default_pool", name
                kind = "mirror" if isinstance(task, MirrorOnly) else "other"
            else:
                assert task.pool == WAREHOUSE_POOL, f"{name} opens the warehouse outside the pool"
                kind = "warehouse"
            pools.setdefault(kind, set()).add(name)
    assert {
        "churn_nightly.features.dbt_producer_watcher",
        "churn_nightly.ingest.validate_and_load",
        "churn_nightly.score.plan",
        "churn_nightly.score.shard",
        "churn_nightly.score.publish",
        "churn_nightly.monitor.request_retrain",
        "churn_retrain.retrain_and_decide",
        "churn_model_promote.promote",  # the audit log is a warehouse table
        "churn_model_rollback.rollback",
    } <= pools["warehouse"]
    assert len(pools["mirror"]) >= 14


def test_watcher_tasks_poke_outside_the_warehouse_pool(dagbag) -> None:
    """Watcher mode (the default): only the producer runs dbt and takes the warehouse slot;
    the per-model tasks poke for its results in the worker instead of deferring (a trigger
    firing at once races the executor in Airflow 3.3, see churnops.orchestration.dbt)."""
    from churnops.orchestration.watcher import MirrorOnly, RebuildingProducerWatcher

    features = [t for t in dagbag.dags["churn_nightly"].tasks if t.task_id.startswith("features.")]
    producer = dagbag.dags["churn_nightly"].get_task("features.dbt_producer_watcher")
    assert isinstance(producer, RebuildingProducerWatcher)
    assert producer.pool == WAREHOUSE_POOL and producer.retries >= 1
    mirrors = [t for t in features if hasattr(t, "deferrable") and t is not producer]
    assert len(mirrors) >= 14  # a task per model, and one per model's tests
    for task in mirrors:
        assert isinstance(task, MirrorOnly), task.task_id
        assert task.pool == "default_pool" and task.deferrable is False, task.task_id
        assert task.mode == "poke" and task.poke_interval <= 5, task.task_id


class FakeTI:
    """The task instance a task sees at run time: its try and the producer's XComs."""

    def __init__(self, try_number: int, xcoms: dict | None = None) -> None:
        self.try_number = try_number
        self.dag_id = "churn_nightly"
        self.map_index = -1
        self.xcoms = dict(xcoms or {})
        self.pushed: dict = {}

    def xcom_pull(self, task_ids=None, key="return_value", **kwargs):
        return self.xcoms.get(key)

    def xcom_push(self, key, value, **kwargs) -> None:
        self.pushed[key] = value


def _context(ti: FakeTI) -> dict:
    return {"ti": ti, "task_instance": ti, "run_id": "backfill__2026-07-02T02:30:00+00:00"}


@pytest.mark.parametrize("try_number", [1, 2, 3])
def test_the_watcher_producer_runs_dbt_build_on_every_try(dagbag, monkeypatch, try_number) -> None:
    """A retry, a cleared night or `backfill --reprocess-behavior completed` (which clears
    it) starts the producer on try >= 2: it builds the night again, in the warehouse pool,
    where Cosmos' own producer skips and leaves the per-model tasks to run dbt themselves."""
    import copy

    import cosmos.operators.watcher as cosmos_watcher
    from airflow.sdk.exceptions import AirflowSkipException

    producer = copy.copy(dagbag.dags["churn_nightly"].get_task("features.dbt_producer_watcher"))
    builds: list = []
    monkeypatch.setattr(producer, "build_and_run_cmd", lambda **kwargs: builds.append(kwargs))
    ti = FakeTI(try_number)
    producer.execute(_context(ti))
    assert len(builds) == 1 and "build" in producer.base_cmd
    assert ti.pushed["task_status"] == "completed"

    # Cosmos 1.15.1's producer, for the record: a later try skips the build.
    monkeypatch.setattr(cosmos_watcher, "_restore_xcom_from_variable", lambda context: False)
    monkeypatch.setattr(cosmos_watcher, "_init_xcom_backup", lambda context, persist: None)
    stock = cosmos_watcher.DbtProducerWatcherOperator.execute
    if try_number > 1:
        with pytest.raises(AirflowSkipException):
            stock(producer, _context(FakeTI(try_number)))
        assert len(builds) == 1


MODEL = "features.fct_customer_features.run"
MODEL_KEY = "model__churnops__fct_customer_features_status"
TESTS = "features.fct_customer_features.test"
TESTS_KEY = "model__churnops__fct_customer_features_tests_status"


def _mirror(dagbag, monkeypatch, task_id: str, producer_state: str | None):
    import copy

    task = copy.copy(dagbag.dags["churn_nightly"].get_task(task_id))
    monkeypatch.setattr(task, "_get_producer_task_status", lambda context: producer_state)
    return task


@pytest.mark.parametrize(
    ("task_id", "key", "done"),
    [(MODEL, MODEL_KEY, {"status": "success", "outlet_uris": []}), (TESTS, TESTS_KEY, "pass")],
)
def test_a_watcher_task_mirrors_the_build_on_every_try_and_never_runs_dbt(
    dagbag, monkeypatch, task_id, key, done
) -> None:
    """Cosmos' per-model task, on a later try, runs `dbt run`/`dbt test --select <model>`
    itself once the producer has finished, outside the warehouse pool. Ours mirror: a
    first try follows the build as it goes; a later try waits for a finished build (the
    previous try's XComs are still readable when the producer's next try starts)."""
    from airflow.sdk.exceptions import AirflowException, AirflowRescheduleException
    from cosmos.operators._watcher.base import BaseConsumerSensor

    built = {key: done}
    # First try: the producer's results as they come.
    assert _mirror(dagbag, monkeypatch, task_id, "running").poke(_context(FakeTI(1, built)))
    assert not _mirror(dagbag, monkeypatch, task_id, "queued").poke(_context(FakeTI(1)))
    # A later try (a retry, a cleared night): only a finished build counts.
    for state in ("scheduled", "queued", "running"):
        task = _mirror(dagbag, monkeypatch, task_id, state)
        assert task.poke(_context(FakeTI(2, built))) is False, state
    assert _mirror(dagbag, monkeypatch, task_id, "success").poke(_context(FakeTI(2, built)))
    # The model failed in the build: red, on any try, without running dbt.
    failed = {key: {"status": "error", "outlet_uris": []} if key == MODEL_KEY else "fail"}
    for try_number in (1, 2):
        task = _mirror(dagbag, monkeypatch, task_id, "failed")
        with pytest.raises(AirflowException, match="in the build of"):
            task.poke(_context(FakeTI(try_number, failed)))
    # The producer failed before reaching the model: red, no dbt of its own.
    with pytest.raises(AirflowException, match="never reported"):
        _mirror(dagbag, monkeypatch, task_id, "failed").poke(_context(FakeTI(1)))
    # The producer waits out its retry delay (or is not scheduled yet): the task gives its
    # worker slot back instead of holding it, so the producer always finds one.
    for state in (None, "up_for_retry", "up_for_reschedule", "restarting"):
        with pytest.raises(AirflowRescheduleException):
            _mirror(dagbag, monkeypatch, task_id, state).poke(_context(FakeTI(2)))
    # Every way into dbt is closed: Cosmos' own poke on a later try falls back to running
    # dbt for the model; here that fallback refuses.
    task = _mirror(dagbag, monkeypatch, task_id, "success")
    with pytest.raises(AirflowException, match="never runs dbt"):
        BaseConsumerSensor.poke(task, _context(FakeTI(2, built)))
    with pytest.raises(AirflowException, match="never runs dbt"):
        task.build_and_run_cmd(context=_context(FakeTI(2)), cmd_flags=[])


@pytest.mark.parametrize("mode", ["per_model", "build"])
def test_in_the_other_dbt_modes_every_features_task_runs_dbt_in_the_pool(mode) -> None:
    """`per_model` (a dbt build per model task) and `build` (one task): every task runs
    dbt, on every try, so every one of them takes the warehouse slot. The exceptions are
    the ephemeral models' no-op tasks (Cosmos renders them as EmptyOperator: they only
    keep the lineage, and run nothing)."""
    import dataclasses
    import datetime as dt

    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    from churnops.orchestration.dbt import features_task_group
    from churnops.settings import load_settings

    settings = load_settings()
    settings = dataclasses.replace(
        settings, orchestration=dataclasses.replace(settings.orchestration, dbt_execution=mode)
    )
    with DAG(f"probe_{mode}", schedule=None, start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)):
        group = features_task_group(settings)
    tasks = [t for t in group.iter_tasks() if not isinstance(t, EmptyOperator)]
    assert len(tasks) >= (14 if mode == "per_model" else 1)
    assert {t.pool for t in tasks} == {WAREHOUSE_POOL}
    no_ops = {t.task_id for t in group.iter_tasks() if isinstance(t, EmptyOperator)}
    ephemeral = {"int_usage_windowed_per_date", "int_usage_windowed_by_frames"}
    assert {task_id.split(".")[1].removesuffix("_model_build") for task_id in no_ops} <= ephemeral


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


def test_dbt_node_ids_fit_xcom_keys() -> None:
    """Cosmos's watcher publishes each dbt node's status, event, compiled SQL and test
    status under XCom keys made from its unique id; PostgreSQL-backed Airflow refuses a key
    longer than the xcom table's column (SQLite does not check), which failed every try of
    the producer in the prod profile. Name a generated test whose id would not fit."""
    from airflow.models.xcom import XComModel
    from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
    from cosmos.operators._watcher.state import (
        get_compiled_sql_xcom_key,
        get_dbt_event_xcom_key,
        get_status_xcom_key,
    )

    limit = XComModel.__table__.c.key.type.length
    manifest = json.loads((PROJECT_DIR / "dbt_project" / "target" / "manifest.json").read_text())
    keys = [
        make(unique_id)
        for unique_id in manifest["nodes"]
        for make in (
            get_status_xcom_key,
            get_dbt_event_xcom_key,
            get_compiled_sql_xcom_key,
            get_tests_status_xcom_key,
        )
    ]
    assert len(keys) > 100
    too_long = sorted({k for k in keys if len(k) > limit}, key=len)
    assert not too_long, f"{len(too_long)} XCom keys longer than {limit}: {too_long[:3]}"
