"""``celery``: the whole ``churn_nightly`` through the prod profile's real stack (Celery
workers, PostgreSQL, Redis, an MLflow server; ``tests/prod_stack.py``) on the training
state's next night, with 1, 2 and 4 scoring shards: the run's and each stage's wall time
(see ``bench_celery``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

from bench.engines import copy_to_postgres
from bench.harness import (
    BENCH_CUSTOMERS,
    TRAIN_STATE_ENV,
    bench_settings,
    kept_state,
    measure,
)
from bench.train import prepare_training_history, train_params, train_plan

CELERY_SHARDS = (1, 2, 4)
CELERY_BUDGET_S = 2 * 3600


def _stage_seconds(task_instances: list[dict], prefix: str) -> float:
    """Wall time of a group of tasks: first start to last end."""
    mine = [ti for ti in task_instances if ti["task_id"].startswith(prefix) and ti["end_date"]]
    if not mine:
        return 0.0
    start = min(dt.datetime.fromisoformat(ti["start_date"]) for ti in mine)
    end = max(dt.datetime.fromisoformat(ti["end_date"]) for ti in mine)
    return (end - start).total_seconds()


def _task_seconds(ti: dict) -> float:
    start, end = ti.get("start_date"), ti.get("end_date")
    if not (start and end):
        return 0.0
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _night_figures(stack, run: dict, shards: int) -> dict:
    """One run's wall times: the DAG run, each stage, each shard, and where they ran."""
    tis = stack.task_instances("churn_nightly", run["dag_run_id"])
    shard_tis = sorted(
        (ti for ti in tis if ti["task_id"] == "score.shard"), key=lambda ti: ti["map_index"]
    )
    by_id = {ti["task_id"]: ti for ti in tis if ti["task_id"] != "score.shard"}
    published = stack.api(
        f"dags/churn_nightly/dagRuns/{run['dag_run_id']}/taskInstances/score.publish/"
        "xcomEntries/return_value"
    )["value"]
    if isinstance(published, str):
        published = json.loads(published)
    inside = published.get("seconds", {})
    hosts = sorted({str(ti["hostname"]).split("@")[0] for ti in shard_tis})
    return {
        "seconds": (
            dt.datetime.fromisoformat(run["end_date"])
            - dt.datetime.fromisoformat(run["start_date"])
        ).total_seconds(),
        "state": run["state"],
        "tasks": len(tis),
        "ingest_s": _stage_seconds(tis, "ingest."),
        "features_s": _stage_seconds(tis, "features."),
        "score_s": _stage_seconds(tis, "score."),
        "plan_task_s": _task_seconds(by_id["score.plan"]),
        "shard_tasks_s": "/".join(f"{_task_seconds(ti):.1f}" for ti in shard_tis),
        "publish_task_s": _task_seconds(by_id["score.publish"]),
        "monitor_s": _stage_seconds(tis, "monitor."),
        "shards": shards,
        "shard_workers": ",".join(hosts),
        "rows": published.get("rows_scored"),
        # Inside the score group's task processes (summed over shards): what the work took
        # without Airflow's process start, DAG parse and XCom round trips.
        **{f"in-task {k}_s": v for k, v in inside.items()},
    }


def bench_celery(tmp: Path) -> Iterator[tuple[str, dict]]:
    """``churn_nightly`` through the prod profile's real stack at full size, with 1, 2 and
    4 scoring shards: PostgreSQL (metadata, warehouse, MLflow backend), Redis, an MLflow
    server, scheduler, dag-processor, api-server, triggerer and two Celery workers of 2
    slots each (``tests/prod_stack.py``, as the integration test starts them).

    Set-up (untimed): the training bench's state (``CHURNOPS_BENCH_TRAIN_STATE``), its last
    90 days of raw drops and both marts copied into the stack's PostgreSQL warehouse, a
    champion trained there by ``churnops train`` into the MLflow server, and the next
    night's drops simulated. Timed: the same night run three times (``as_of_date`` in the
    trigger form), each with its ``scoring_shards``; the default dbt mode (watcher). The
    figures come from Airflow's task instances (start and end of each task) and from the
    publish task's result (the work inside the score tasks).
    """
    from tests.prod_stack import ProdStack  # the project root is on sys.path: python -m bench

    train_state = kept_state(TRAIN_STATE_ENV, tmp / "train")
    setup = measure(prepare_training_history, train_state)
    yield (f"(set-up, untimed) the training bench's state, {BENCH_CUSTOMERS:,} customers", setup)
    plan = train_plan(train_state)
    night = plan["feed_end"] + dt.timedelta(days=1)
    window_start = night - dt.timedelta(days=90)
    params = train_params(bench_settings(train_state))
    env = {
        "CHURNOPS_SIM_CUSTOMERS": str(BENCH_CUSTOMERS),
        "CHURNOPS_SNAPSHOT_EVERY_DAYS": str(params.snapshot_every_days),
        "CHURNOPS_TRAIN_MONTHS": str(params.train_months),
        "CHURNOPS_VALIDATION_MONTHS": str(params.validation_months),
        "CHURNOPS_TEST_MONTHS": str(params.test_months),
        "CHURNOPS_RETRY_DELAY_MINUTES": "0",
    }
    prepared: dict[str, dict] = {}

    def prepare(stack: ProdStack) -> None:
        dsn = stack.settings.warehouse.postgres_dsn
        with stack.phase("copy the state to PostgreSQL"):
            prepared["copy"] = measure(
                copy_to_postgres,
                train_state,
                dsn,
                night.isoformat(),
                True,
                window_start.isoformat(),
            )
        with stack.phase("churnops train (the champion, into the MLflow server)"):
            stack.churnops("train", "--reason", "bench champion", timeout=3600)
        with stack.phase("churnops simulate (the night's drops)"):
            stack.churnops("simulate", "--start", night.isoformat(), "--end", night.isoformat())

    runs: list[tuple[int, dict]] = []
    with ProdStack(
        tmp / "celery",
        env=env,
        budget_seconds=CELERY_BUDGET_S,
        say=lambda line: print(f"  {line}", flush=True),
        before_airflow=prepare,
    ) as stack:
        stack.unpause("churn_nightly")
        # Each run's drift may ask for a retrain: it would share the cores with the next run.
        stack.api("dags/churn_retrain", {"is_paused": True}, "PATCH")
        for position, shards in enumerate(CELERY_SHARDS):
            run_id = f"bench_{shards}_shards"
            logical = dt.datetime.combine(night, dt.time(2, 30), tzinfo=dt.UTC)
            stack.trigger(
                "churn_nightly",
                run_id,
                logical + dt.timedelta(hours=position),
                {"as_of_date": night.isoformat(), "scoring_shards": shards},
            )
            run = stack.wait_for_run("churn_nightly", run_id, 3600)
            runs.append((shards, _night_figures(stack, run, shards)))
    yield (
        f"(set-up, untimed) copy to the stack's PostgreSQL (raw from {window_start})",
        prepared["copy"],
    )
    yield (
        "(set-up, untimed) the stack's phases",
        {
            "seconds": sum(stack.timings.values()),
            "peak_rss_mb": 0.0,
            **{f"{k}_s": v for k, v in stack.timings.items()},
        },
    )
    for shards, figures in runs:
        figures["peak_rss_mb"] = 0.0  # many processes: no single peak
        yield (
            f"churn_nightly via Celery, night {night}, {BENCH_CUSTOMERS:,} customers, "
            f"{shards} shard{'s' if shards > 1 else ''} on 2 workers",
            figures,
        )
