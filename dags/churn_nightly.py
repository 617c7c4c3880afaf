"""
### churn_nightly: the nightly spine of the churn pipeline

One run per night processes one business day **D**: the run's logical date (UTC; for the
schedule, cron `{s.orchestration.nightly_cron}` from {s.orchestration.nightly_start}, that
is the start of its data interval, so a night's run processes the day that just ended),
or `as_of_date` from the trigger form.

1. **ingest**
   - `wait_for_drops` waits (reschedule mode, no worker slot held) until every landing
     table's drop `landing/<table>/dt=D/` has arrived.
   - `validate_and_load` checks each drop with its Great Expectations suite (schema, types,
     keys, ranges, allowed values, dates inside D, day-over-day volume). A passing drop
     replaces partition D of `raw.<table>` in one transaction. A failing one is moved to
     `quarantine/<table>/dt=D/` with its validation result (JSON + Data Docs), nothing of it
     is loaded, and the task fails, without retrying, with one readable message naming
     file, column, rule and failing count for every rejected table.
   - `check_window_loaded` makes sure every day of D's 90-day window is loaded (a backfill
     run out of order waits, through its retries, for the days before it).
2. **features**: dbt through Cosmos, one task per model (model + its tests): staging,
   the rolling windows, and the marts `fct_customer_features` (as of D) and
   `fct_churn_labels` (for D - 90, whose 90-day window closes tonight). Every write is the
   whole partition for D.
3. **score**: the model behind the MLflow alias `champion` scores every active customer
   as of D into `scoring.predictions` (probability, risk band, serving model, and for the
   `{s.scoring.reason_band}` band the {s.scoring.reason_count} features pushing the score
   up most). A `challenger`, when there
   is one, scores the same customers into `scoring.shadow_predictions`; with a canary
   share set by its rollout (`churn_rollout`: shadow, then
   `CHURNOPS_CANARY_SHARE` = {s.rollout.canary_share:g}, then the ramp), a stable
   hash-chosen share of customers is served the challenger's score.
   - `plan` fixes the night's model versions, canary share and number of customer-hash
     shards (`CHURNOPS_SCORING_SHARDS`, now {s.scoring.shards}, or `scoring_shards` in
     the trigger form), and
     compiles a new version's trees once. Without a champion it is skipped with a message,
     everything after it too, and earlier predictions stay.
   - `shard` is mapped once per shard (named "shard i/N"): each reads only its customers,
     scores them and stages them in one transaction; any worker can run any shard, and a
     retried shard replaces only its own slice.
   - `publish` checks that the staged shards make the whole night (every shard, one row
     per customer, as many as the night's feature rows) and replaces the night's
     predictions in one transaction: a reader sees the previous night or the whole new
     one, never half; it emits the Asset `scores_published` (the night in its extra),
     which starts `churn_rollout`. Drift is not sharded: it needs every row of the night at once, and
     takes seconds.
   - `online_features` (beside the scoring) writes the night's features to the online
     store (`CHURNOPS_ONLINE_STORE_URL`) under D and switches the real-time service
     (`churnops serve`) to them in one command; with Redis down it fails in one line
     naming the host (retried), and the service keeps the previous night.
   - `training_copies` (beside the scoring) makes sure every labelled snapshot a
     training started tonight may read (counted back from D - 90 every
     `CHURNOPS_SNAPSHOT_EVERY_DAYS` = {s.train.snapshot_every_days} days) has a columnar
     copy (Parquet, in the shared files' `training/`), so the training reads none of
     them from the warehouse: in steady state one new copy a night, the snapshot whose
     label matured tonight (D - 90); after a bootstrap, the missing ones. Copies older
     than the default training window are removed. A copy is read only while no dbt
     build has rewritten its date since (the marts' write log, `marts.as_of_writes`).
4. **monitor**
   - `drift_and_performance`: first the real-time service's sampled answers from Redis
     into `monitoring.online_requests` (with Redis down they wait for the next night);
     then the night's features and served scores against the
     champion's training sample (stored with its registered version): per-feature drift
     (`{s.drift.num_method}` for numbers at threshold {s.drift.num_threshold:g},
     `{s.drift.cat_method}` for categories at {s.drift.cat_threshold:g}; per feature in
     `CHURNOPS_DRIFT_FEATURE_METHODS`) and prediction
     drift, saved as an Evidently report (HTML + JSON, see the **Drift reports** page) and
     in `monitoring.feature_drift` / `drift_summary`. Then AUC, recall, precision and F1 of
     every cohort whose 90-day labels matured (`monitoring.cohort_performance`).
   - `request_retrain`: the retraining policy (cohort AUC <
     {s.retraining.min_cohort_auc:g}, drift on {s.retraining.max_drifted_features}+
     features, over {s.retraining.max_new_labels:,} new churn labels since the champion's
     data, a {s.retraining.cooldown_days}-day cooldown). When it
     fires, the Asset `retrain_requested` is emitted with the reasons and `churn_retrain`
     starts; an alert goes to the `{s.alerts.conn_id}` connection. Otherwise it is skipped
     with the reasons in its log.

**Reruns and backfills are idempotent**: `make backfill FROM=2025-03-01 TO=2025-03-07`
(= `airflow backfill create --dag-id churn_nightly --from-date ... --to-date ...`) gives
for every day exactly what its night would have given, in any order; so does a cleared
night (`churnops backfill ... --reprocess completed`) or a retried task. Tasks that open
the warehouse or run dbt share the pool `{s.orchestration.warehouse_pool}`
({s.orchestration.warehouse_pool_slots} slot(s)) on every try. On a
retry or a clear the dbt producer (`features.dbt_producer_watcher`) builds the night
again; the per-model tasks never run dbt, they mirror the producer's last build.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import CronDataIntervalTimetable, Param, TaskGroup, dag, task

from churnops.orchestration.assets import RETRAIN_REQUESTED, SCORES_PUBLISHED
from churnops.orchestration.dbt import features_task_group
from churnops.orchestration.defaults import default_args
from churnops.orchestration.scoring import MAP_INDEX_TEMPLATE, SHARDS_PARAM
from churnops.settings import load_settings

settings = load_settings()
orchestration = settings.orchestration


@task.sensor(
    poke_interval=orchestration.drop_poke_seconds,
    timeout=orchestration.drop_wait_minutes * 60,
    mode="reschedule",
)
def wait_for_drops():
    """Done when every landing table has a drop folder for the run's day."""
    from churnops.orchestration.ingest import drops_arrived

    return drops_arrived()


@task(pool=orchestration.warehouse_pool)
def validate_and_load() -> dict:
    """Validate every drop of the run's day; load the good ones, quarantine the bad."""
    from churnops.orchestration.ingest import validate_and_load_day

    return validate_and_load_day()


@task(pool=orchestration.warehouse_pool)
def check_window_loaded() -> str:
    """Every day of D's 90-day window must be loaded before features are built for D."""
    from churnops.orchestration.ingest import window_loaded

    return window_loaded()


@task(pool=orchestration.warehouse_pool)
def plan() -> list[dict]:
    """Fix the night's model versions and customer-hash shards (skipped without a champion)."""
    from churnops.orchestration.scoring import plan_scoring

    return plan_scoring()


@task(pool=orchestration.warehouse_pool, map_index_template=MAP_INDEX_TEMPLATE)
def shard(assignment: dict) -> dict:
    """Score one shard of the night's customers and stage it."""
    from churnops.orchestration.scoring import score_one_shard

    return score_one_shard(assignment)


@task(pool=orchestration.warehouse_pool, outlets=[SCORES_PUBLISHED])
def publish(assignments: list[dict], shard_results: list[dict]) -> dict:
    """Publish the whole night once every shard is staged."""
    from churnops.orchestration.scoring import publish_scores

    return publish_scores(assignments, shard_results)


@task(pool=orchestration.warehouse_pool)
def online_features() -> dict:
    """Materialize the night's features into the online store (Redis) and switch to them."""
    from churnops.orchestration.online import materialize_online_task

    return materialize_online_task()


@task(pool=orchestration.warehouse_pool)
def training_copies() -> dict:
    """Columnar copies of the labelled snapshots a training started tonight may read."""
    from churnops.orchestration.model import keep_training_copies_task

    return keep_training_copies_task()


@task(pool=orchestration.warehouse_pool)
def drift_and_performance() -> dict:
    """Drift report of the night against the champion's training data; matured cohorts."""
    from churnops.orchestration.monitoring import monitor_night_task

    return monitor_night_task()


@task(pool=orchestration.warehouse_pool, outlets=[RETRAIN_REQUESTED])
def request_retrain():
    """Emit retrain_requested when the retraining policy fires (skipped otherwise)."""
    from churnops.orchestration.monitoring import request_retrain_task

    yield from request_retrain_task()


@dag(
    dag_id="churn_nightly",
    schedule=CronDataIntervalTimetable(orchestration.nightly_cron, timezone="UTC"),
    start_date=dt.datetime.combine(orchestration.nightly_start, dt.time(), tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=orchestration.max_active_runs,
    default_args=default_args(settings),
    params={
        "as_of_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Process this day instead of the run's data interval (YYYY-MM-DD).",
        ),
        SHARDS_PARAM: Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="Score this night in this many customer-hash shards "
            f"(default: CHURNOPS_SCORING_SHARDS, now {settings.scoring.shards}).",
        ),
    },
    tags=["churnops", "nightly", "ingest", "features", "scoring", "monitoring"],
    doc_md=__doc__.format(s=settings),  # the numbers in force, not the defaults
)
def churn_nightly() -> None:
    with TaskGroup("ingest", tooltip="validate each landing drop, load or quarantine it") as ingest:
        wait_for_drops() >> validate_and_load() >> check_window_loaded()
    with TaskGroup("score", tooltip="plan, score the shards, publish the night") as scoring:
        assignments = plan()
        publish(assignments, shard.expand(assignment=assignments))
    with TaskGroup(
        "monitor", tooltip="drift, matured-label performance, retrain trigger"
    ) as monitor:
        drift_and_performance() >> request_retrain()
    features = features_task_group(settings)
    ingest >> features >> scoring >> monitor
    features >> online_features()  # beside the scoring: a Redis outage never holds it up
    features >> training_copies()  # beside the scoring: training reads it, not tonight's score


churn_nightly()
