"""The production profile for real, natively on this machine (``tests/prod_stack.py``).

Its own PostgreSQL databases (Airflow metadata, warehouse, MLflow backend store), an
``mlflow server``, and Airflow with the CeleryExecutor on Redis: scheduler,
dag-processor, api-server, triggerer and two Celery workers, every one a real process
in its own process group, configured only through environment variables
(``CHURNOPS_PROFILE=prod``, ``CHURNOPS_POSTGRES_DSN``, ``CHURNOPS_MLFLOW_TRACKING_URI``,
``CHURNOPS_STATE_DIR``, ``AIRFLOW__*``).

1. ``churnops bootstrap`` loads a small history into the PostgreSQL warehouse and
   ``churnops train`` registers the first champion in the MLflow server (an acquisition
   campaign starts 14 days before the history ends, as in ``make run``).
2. ``churn_nightly`` is triggered for the next night through the REST API (a JWT from
   ``/auth/token``): the night's predictions land in PostgreSQL, one per customer, and the
   registry has the champion alias; every task ran on one of the two Celery workers.
3. The campaign shows up as drift: the retraining policy fires, ``churn_retrain`` starts
   from the asset event, runs on a worker and records its decision.
4. The night after, scored in 4 customer-hash shards on the 2 workers (the trigger's
   ``scoring_shards``; night 1 took the 2 of ``CHURNOPS_SCORING_SHARDS``): while a shard
   runs, its worker is SIGKILLed (its whole process group and every process under it, as
   a machine dies). The scheduler sees the try's heartbeat stop, the retry runs on the
   other worker, and the night comes out whole: one prediction per customer, none
   missing, none twice.
5. The same night scored again in one shard (``churnops score --shards 1``) and
   monitored again (``churnops monitor``): every prediction, shadow score and drift
   verdict equals the 4-shard night's.

Everything is stopped and the databases dropped at the end; the timings are printed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.prod_stack import BIN, ProdStack, StackError, free_port, log_tail

pytestmark = pytest.mark.integration

HISTORY_START = dt.date(2025, 1, 1)
HISTORY_DAYS = 420
HISTORY_END = HISTORY_START + dt.timedelta(days=HISTORY_DAYS - 1)
NIGHTS = [HISTORY_END + dt.timedelta(days=1), HISTORY_END + dt.timedelta(days=2)]
ENV = {
    # tests/trained_state.py's small base: a first champion passes the AUC floor.
    "CHURNOPS_SIM_CUSTOMERS": "2000",
    "CHURNOPS_SIM_DAYS": str(HISTORY_DAYS),
    # As `make run`: a campaign the champion never saw, drift on the first night.
    "CHURNOPS_SIM_SCENARIO": "acquisition_campaign",
    "CHURNOPS_SIM_SCENARIO_START": (HISTORY_END - dt.timedelta(days=13)).isoformat(),
    # The retry of a task whose worker died starts at once, not after 5 minutes.
    "CHURNOPS_RETRY_DELAY_MINUTES": "0",
    # dbt as one task: the watcher mode's 36 task processes add about 45 s a night on 2
    # cores. The watcher's one PostgreSQL-only failure (an XCom key over the xcom.key
    # column's 512 characters, from a dbt test's generated name) is guarded by
    # tests/dags/test_dag_integrity.py::test_dbt_node_ids_fit_xcom_keys.
    "CHURNOPS_DBT_EXECUTION": "build",
    # Night 1 in two customer-hash shards; night 2 asks for four in its trigger.
    "CHURNOPS_SCORING_SHARDS": "2",
}
SHARDS = {1: 2, 2: 4}
NIGHTLY_TASKS = {
    "ingest.wait_for_drops",
    "ingest.validate_and_load",
    "ingest.check_window_loaded",
    "features.dbt_build",
    "online_features",  # the night's features into Redis (this session's key prefix)
    "training_copies",  # the columnar copy of the snapshot whose label matured
    "score.plan",
    "score.shard",
    "score.publish",
    "monitor.drift_and_performance",
    "monitor.request_retrain",
}
SHARD_TASK = "score.shard"
# Start-up, CLI set-up, three DAG runs and a heartbeat timeout, all bounded together.
BUDGET_SECONDS = 45 * 60
RUN_TIMEOUT = 900


@dataclass
class Night:
    night: dt.date
    run: dict
    task_instances: list[dict]
    predictions: int
    distinct_customers: int
    features: int
    scoring_runs: list[dict]
    champion_version: str | None


@dataclass
class Kill:
    worker: str
    hostname: str
    map_index: int
    pids: list[int]
    seconds_into_execute: float
    shard_tries: list[dict] = field(default_factory=list)


@dataclass
class Rescored:
    """Night 2 as its 4 shards published it, and again scored in one shard."""

    sharded: dict[str, list[tuple]]
    whole: dict[str, list[tuple]]


@dataclass
class Online:
    """``churnops serve`` (2 uvicorn workers) on the stack, asked for night 2's customers."""

    ready: dict
    batch: dict[int, dict]
    status: int
    answers: dict[int, dict]
    without_key: int
    key_in_log: bool


@dataclass
class Outcome:
    hostnames: dict[str, str]
    first: Night
    second: Night
    retrain_request: dict
    retrain_run: dict
    retrain_task_instances: list[dict]
    retrain_runs: list[str]
    decisions: list[dict]
    kill: Kill
    rescored: Rescored
    online: Online
    champion_alias_version: str
    artifact_files: int
    shared_files: list[str]
    connections: int
    timings: dict[str, float]


def _rows(dsn: str, sql: str, params: list[Any]) -> list[dict]:
    import psycopg2
    import psycopg2.extras

    con = psycopg2.connect(dsn, connect_timeout=10)
    try:
        with con.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()]
    finally:
        con.close()


def _night(stack: ProdStack, night: dt.date, run: dict) -> Night:
    dsn = stack.user_env["CHURNOPS_POSTGRES_DSN"]
    scored = _rows(
        dsn,
        "select count(*) as n, count(distinct customer_id) as customers, "
        "max(model_version) as version from scoring.predictions where as_of_date = %s",
        [night],
    )[0]
    features = _rows(
        dsn, "select count(*) as n from marts.fct_customer_features where as_of_date = %s", [night]
    )[0]
    runs = _rows(
        dsn,
        "select state, rows_scored, champion_version, run_id from scoring.scoring_runs "
        "where as_of_date = %s order by started_at",
        [night],
    )
    return Night(
        night=night,
        run=run,
        task_instances=stack.task_instances("churn_nightly", run["dag_run_id"]),
        predictions=int(scored["n"]),
        distinct_customers=int(scored["customers"]),
        features=int(features["n"]),
        scoring_runs=runs,
        champion_version=scored["version"],
    )


def _trigger_night(stack: ProdStack, night: dt.date, conf: dict | None = None) -> str:
    run_id = f"prod_stack__{night.isoformat()}"
    logical = dt.datetime.combine(night, dt.time(2, 30), tzinfo=dt.UTC)
    stack.trigger("churn_nightly", run_id, logical, conf)
    return run_id


# The task runner logs this once the DAG is parsed on the worker, just before execute().
EXECUTE_BEGINS = "Worker startup parse complete"
# Seconds into a shard's execute: loading the models and scoring a quarter of the small
# base take 2-4 s here, so the kill lands before the shard has staged anything.
KILL_AFTER_EXECUTE_BEGINS = 0.5


def _kill_a_worker_inside_a_shard(stack: ProdStack, run_id: str) -> Kill:
    """Wait until a shard's first try is inside its ``execute`` on one of the workers,
    then SIGKILL that worker (its whole tree)."""
    by_hostname = {host: name for name, host in stack.hostnames.items()}
    executing: dict[int, float] = {}

    def inside_execute() -> dict | None:
        shards = [
            ti
            for ti in stack.task_instances("churn_nightly", run_id)
            if ti["task_id"] == SHARD_TASK
        ]
        if shards and all(ti["state"] == "success" for ti in shards):
            raise StackError("every shard finished before a worker was killed")
        for ti in shards:
            if ti["state"] != "running" or ti.get("hostname") not in by_hostname:
                continue
            index = int(ti["map_index"])
            log = stack.task_log("churn_nightly", run_id, SHARD_TASK, 1, index)
            begun = log.exists() and EXECUTE_BEGINS in log.read_text(errors="replace")
            if index not in executing and begun:
                executing[index] = time.monotonic()
            if index in executing and time.monotonic() - executing[index] >= (
                KILL_AFTER_EXECUTE_BEGINS
            ):
                return ti
        return None

    ti = stack.wait_for(inside_execute, RUN_TIMEOUT, "a shard to be running on a worker", every=0.1)
    index = int(ti["map_index"])
    worker = by_hostname[ti["hostname"]]
    pids = stack.kill_worker(worker)
    into = time.monotonic() - executing[index]
    stack.say(
        f"[prod-stack] SIGKILLed {worker} (pids {pids}) {into:.1f} s into the execute of "
        f"shard {index + 1}"
    )
    return Kill(worker, ti["hostname"], index, pids, into)


def _night_as_published(dsn: str, night: dt.date) -> dict[str, list[tuple]]:
    """Everything a night's scoring and drift published, but the times they were made."""
    queries = {
        "predictions": "select customer_id, churn_probability, risk_band, model_name, "
        "model_version, served_by, reason_codes from scoring.predictions",
        "shadow_predictions": "select customer_id, churn_probability, risk_band, "
        "model_version from scoring.shadow_predictions",
        "feature_drift": "select model_version, feature, kind, method, statistic, p_value, "
        "threshold, drifted, reference_rows, current_rows from monitoring.feature_drift",
        "drift_summary": "select model_version, features_total, features_drifted, "
        "share_drifted, drifted_features, prediction_drifted, dataset_drifted "
        "from monitoring.drift_summary",
    }
    return {
        name: [
            tuple(row.values())
            for row in _rows(dsn, f"{sql} where as_of_date = %s order by 1, 2", [night])
        ]
        for name, sql in queries.items()
    }


def _scenario(stack: ProdStack) -> Outcome:
    from urllib.parse import urlsplit

    shared = Path(urlsplit(stack.user_env["CHURNOPS_DATA_URL"]).path)
    from mlflow import MlflowClient

    dsn = stack.user_env["CHURNOPS_POSTGRES_DSN"]
    stack.unpause("churn_nightly")
    stack.unpause("churn_retrain")
    with stack.phase("drops of the two nights (churnops simulate)"):
        stack.churnops("simulate", "--start", NIGHTS[0].isoformat(), "--end", NIGHTS[1].isoformat())

    with stack.phase(f"night 1 ({NIGHTS[0]}): churn_nightly through Celery"):
        run_id = _trigger_night(stack, NIGHTS[0])
        run = stack.wait_for_run("churn_nightly", run_id, RUN_TIMEOUT)
    first = _night(stack, NIGHTS[0], run)
    uri = stack.user_env["CHURNOPS_MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias(
        stack.settings.mlflow.registered_model_name, "champion"
    )

    request = _rows(
        dsn, "select * from monitoring.retrain_requests where as_of_date = %s", [NIGHTS[0]]
    )
    with stack.phase("churn_retrain (asset-triggered)"):
        retrain = stack.wait_for_new_run("churn_retrain", "asset_triggered__", RUN_TIMEOUT)
    retrain_tis = stack.task_instances("churn_retrain", retrain["dag_run_id"])
    retrain_runs = [str(r["dag_run_id"]) for r in stack.runs("churn_retrain")]
    decisions = _rows(dsn, "select * from ops.model_decisions order by decided_at", [])

    with stack.phase(f"night 2 ({NIGHTS[1]}): 4 shards, a worker SIGKILLed inside one"):
        run_id = _trigger_night(stack, NIGHTS[1], {"scoring_shards": SHARDS[2]})
        kill = _kill_a_worker_inside_a_shard(stack, run_id)
        run = stack.wait_for_run("churn_nightly", run_id, RUN_TIMEOUT)
    kill.shard_tries = stack.tries("churn_nightly", run_id, SHARD_TASK, kill.map_index)
    second = _night(stack, NIGHTS[1], run)
    sharded = _night_as_published(dsn, NIGHTS[1])
    with stack.phase("night 2 again in one shard (churnops score, churnops monitor)"):
        stack.churnops("score", "--date", NIGHTS[1].isoformat(), "--shards", "1")
        stack.churnops("monitor", "--date", NIGHTS[1].isoformat())
    rescored = Rescored(sharded, _night_as_published(dsn, NIGHTS[1]))
    with stack.phase("churnops serve (2 workers): night 2's customers online"):
        online = _serve_night(stack, dsn, NIGHTS[1])
    for night in (first, second):
        hosts = {ti["task_id"]: ti["hostname"] for ti in night.task_instances}
        stack.say(f"[prod-stack] {night.night}: {night.predictions:,} predictions; ran on {hosts}")
    connections = stack.connection_count()
    stack.say(f"[prod-stack] open PostgreSQL connections on the stack's databases: {connections}")
    stack.say(
        f"[prod-stack] shard {kill.map_index + 1} tries: "
        + "; ".join(
            f"try {t['try_number']} {t['state']} on {t['hostname']} "
            f"({t['start_date']} .. {t['end_date']})"
            for t in kill.shard_tries
        )
    )
    return Outcome(
        hostnames=dict(stack.hostnames),
        first=first,
        second=second,
        retrain_request=request[0] if request else {},
        retrain_run=retrain,
        retrain_task_instances=retrain_tis,
        retrain_runs=retrain_runs,
        decisions=decisions,
        kill=kill,
        rescored=rescored,
        online=online,
        champion_alias_version=str(champion.version),
        artifact_files=sum(1 for p in stack.artifacts_dir.rglob("*") if p.is_file()),
        shared_files=sorted(str(p.relative_to(shared)) for p in shared.rglob("*") if p.is_file()),
        connections=connections,
        timings=stack.timings,
    )


def _serve_night(stack: ProdStack, dsn: str, night: dt.date, customers: int = 300) -> Online:
    """``churnops serve --workers 2`` with the stack's environment (the prod profile: the
    online store in this stack's Redis keys, the champion from the MLflow server, stale
    answers from the PostgreSQL warehouse), asked for ``customers`` of the night."""
    import httpx

    key = f"prod-stack-{uuid.uuid4().hex}"
    port = free_port()
    log = stack.logs_dir / "serve.log"
    process = subprocess.Popen(
        [str(BIN / "churnops"), "serve", "--port", str(port), "--workers", "2"],
        env={**stack.process_env, "CHURNOPS_SERVE_API_KEY": key},
        cwd=stack.root,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # uvicorn's workers stop with it
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:

            def ready() -> dict | None:
                assert process.poll() is None, log_tail(log)
                try:
                    answer = client.get("/readyz")
                except httpx.TransportError:
                    return None
                return answer.json() if answer.status_code == 200 else None

            readiness = stack.wait_for(ready, 180, "churnops serve's /readyz")
            batch = {
                int(row["customer_id"]): row
                for row in _rows(
                    dsn,
                    "select customer_id, churn_probability, risk_band, model_version, served_by "
                    "from scoring.predictions where as_of_date = %s order by customer_id "
                    "limit %s",
                    [night, customers],
                )
            }
            answer = client.post(
                "/v1/score:batch", json={"customer_ids": sorted(batch)}, headers={"X-API-Key": key}
            )
            scores = answer.json().get("scores", []) if answer.status_code == 200 else []
            without_key = client.post("/v1/score", json={"customer_id": min(batch)}).status_code
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    return Online(
        ready=readiness,
        batch=batch,
        status=answer.status_code,
        answers={int(s["customer_id"]): s for s in scores},
        without_key=without_key,
        key_in_log=key in log.read_text(),
    )


def _bootstrap_and_train(stack: ProdStack) -> None:
    """Through the real CLI, as a user sets a new installation up."""
    with stack.phase("churnops bootstrap (PostgreSQL warehouse)"):
        stack.churnops(
            "bootstrap", "--start", HISTORY_START.isoformat(), "--end", HISTORY_END.isoformat()
        )
    with stack.phase("churnops train (first champion, MLflow server)"):
        stack.churnops("train", "--reason", "first champion (prod stack test)")


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    capture = request.config.pluginmanager.get_plugin("capturemanager")

    def say(line: str) -> None:
        """Progress and timings on the terminal as they happen, not only on failure."""
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(line, flush=True)

    root: Path = tmp_path_factory.mktemp("prod-stack")
    # The files every worker shares (drops, quarantine, reports, compiled models) under a
    # base of their own, given as a URL, apart from the state dir.
    shared = root / "shared-data"
    shared.mkdir()
    began = time.perf_counter()
    stack = ProdStack(
        root,
        env={**ENV, "CHURNOPS_DATA_URL": shared.as_uri()},
        budget_seconds=BUDGET_SECONDS,
        say=say,
        before_airflow=_bootstrap_and_train,
    )
    with stack:
        result = _scenario(stack)
    say(f"[prod-stack] whole test set-up: {time.perf_counter() - began:.1f} s")
    return result


def test_a_night_through_celery_scores_every_customer_into_postgres(outcome: Outcome) -> None:
    first = outcome.first
    assert first.run["state"] == "success", first.task_instances
    assert first.features > 1000  # the small base's active customers
    assert first.predictions == first.features == first.distinct_customers
    assert [r["state"] for r in first.scoring_runs] == ["scored"]
    assert first.scoring_runs[0]["rows_scored"] == first.predictions


def test_the_champion_alias_is_in_the_mlflow_servers_registry(outcome: Outcome) -> None:
    # The first champion (v1) scored night 1; its artifacts sit in the server's store.
    assert outcome.first.champion_version == "1"
    assert outcome.champion_alias_version in {"1", "2"}  # v2 if the retrain promoted it
    assert outcome.artifact_files > 0


def test_the_workers_share_drops_reports_and_compiled_models_under_the_data_url(
    outcome: Outcome,
) -> None:
    files = outcome.shared_files
    for night in (outcome.first.night, outcome.second.night):
        assert any(f.startswith(f"landing/usage_daily/dt={night}/") for f in files), files[:9]
        assert any(f.startswith(f"reports/drift/{night}/") and f.endswith(".html") for f in files)
    assert any(f.startswith("models/compiled/churn-v1-") and f.endswith(".so") for f in files)


def test_every_task_ran_on_a_celery_worker(outcome: Outcome) -> None:
    tis = outcome.first.task_instances
    assert {ti["task_id"]: ti["state"] for ti in tis} == dict.fromkeys(NIGHTLY_TASKS, "success")
    hosts = {(ti["task_id"], ti["map_index"]): ti["hostname"] for ti in tis}
    assert set(hosts.values()) <= set(outcome.hostnames.values()), hosts
    assert all(ti["queue"] == "default" for ti in tis)
    # CHURNOPS_SCORING_SHARDS=2: the night was scored by two mapped shard tasks.
    assert sorted(i for (task, i) in hosts if task == SHARD_TASK) == list(range(SHARDS[1]))


def test_the_policy_fired_and_churn_retrain_ran_on_a_worker_and_recorded_its_decision(
    outcome: Outcome,
) -> None:
    request = outcome.retrain_request
    assert request and request["fired"], request
    assert any(r.startswith("drift on") for r in request["reasons"]), request["reasons"]
    assert outcome.retrain_run["state"] == "success", outcome.retrain_task_instances
    states = {ti["task_id"]: ti["state"] for ti in outcome.retrain_task_instances}
    assert states["retrain_and_decide"] == "success", states
    retrain_host = next(
        ti["hostname"]
        for ti in outcome.retrain_task_instances
        if ti["task_id"] == "retrain_and_decide"
    )
    assert retrain_host in outcome.hostnames.values()
    first, latest = outcome.decisions[0], outcome.decisions[-1]
    assert len(outcome.decisions) == 2, outcome.decisions
    assert first["challenger_version"] == "1" and first["action"] == "promote"
    assert latest["challenger_version"] == "2" and latest["champion_version"] == "1"
    # The rollout is on (the default): a winner enters it instead of replacing v1 now.
    assert latest["action"] in {"rollout", "keep"} and json.loads(latest["reasons"])
    assert "churn_retrain" in (latest["actor"] or "")
    assert outcome.champion_alias_version == "1"
    # Deploying the DAG started no monthly run: its first is the next 1st of a month.
    assert outcome.retrain_runs == [outcome.retrain_run["dag_run_id"]], outcome.retrain_runs


def test_a_worker_killed_inside_a_shard_the_retry_completes_the_night_on_the_other(
    outcome: Outcome,
) -> None:
    kill, second = outcome.kill, outcome.second
    assert second.run["state"] == "success", second.task_instances
    shards = {
        ti["map_index"]: ti["state"] for ti in second.task_instances if ti["task_id"] == SHARD_TASK
    }
    assert shards == dict.fromkeys(range(SHARDS[2]), "success")  # the trigger's 4 shards
    tries = sorted(kill.shard_tries, key=lambda t: t["try_number"])
    assert len(tries) == 2, tries
    killed, retried = tries
    assert killed["hostname"] == kill.hostname and killed["state"] != "success", killed
    other = next(h for n, h in outcome.hostnames.items() if n != kill.worker)
    assert retried["hostname"] == other and retried["state"] == "success", retried
    # Whole: one prediction per active customer, none missing, none twice.
    assert second.features > 1000
    assert second.predictions == second.features == second.distinct_customers
    assert second.scoring_runs[-1]["state"] == "scored"
    assert second.scoring_runs[-1]["rows_scored"] == second.predictions
    # Every task after the kill ran on the surviving worker.
    after = [
        ti
        for ti in second.task_instances
        if ti["task_id"].startswith("monitor.") and ti["state"] == "success"
    ]
    assert after and {ti["hostname"] for ti in after} == {other}


def test_four_shards_on_two_workers_publish_what_one_shard_does(outcome: Outcome) -> None:
    """Every prediction, shadow score and drift verdict of night 2 as its 4 shards published
    it (through Celery, a worker killed) equals the same night scored in one shard."""
    sharded, whole = outcome.rescored.sharded, outcome.rescored.whole
    assert len(sharded["predictions"]) == outcome.second.predictions
    assert len(sharded["feature_drift"]) > 40  # 45 features and the prediction
    for table in ("predictions", "shadow_predictions", "feature_drift", "drift_summary"):
        assert whole[table] == sharded[table], table


def test_the_real_time_service_answers_with_the_batchs_scores(outcome: Outcome) -> None:
    """Issue 17 on the production profile: the service reads the night the nightly's
    online_features task put in Redis and serves the registry's champion (and the
    challenger's share, as the batch), with the batch's probability for every customer."""
    online = outcome.online
    assert online.ready["status"] == "ready" and online.ready["night"] == str(NIGHTS[1])
    assert online.ready["champion_version"] == outcome.champion_alias_version
    assert online.status == 200 and len(online.batch) == 300
    assert set(online.answers) == set(online.batch)
    for customer, batch in online.batch.items():
        answer = online.answers[customer]
        assert abs(answer["churn_probability"] - batch["churn_probability"]) <= 1e-12, customer
        assert (answer["risk_band"], answer["model_version"], answer["served_by"]) == (
            batch["risk_band"],
            batch["model_version"],
            batch["served_by"],
        )
        assert answer["feature_as_of_date"] == str(NIGHTS[1]) and not answer["stale"]
    assert online.without_key == 401
    assert not online.key_in_log
