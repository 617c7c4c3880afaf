"""
### churn_retrain: train a challenger and decide whether it replaces the champion

Runs **monthly** (cron `{s.orchestration.retrain_cron}`, UTC) **or** whenever the nightly
monitoring emits the Asset `retrain_requested` (its `extra.reasons` say why), and by hand
from the trigger form.

0. `monthly_retrain_due`: a **scheduled** run goes on only when no model was trained in
   the last {s.retraining.scheduled_min_gap_days} days
   (`CHURNOPS_RETRAIN_SCHEDULED_MIN_GAP_DAYS`): a drift retrain a few days
   ago already learned from the newest data, and Airflow runs the month's past slot as
   soon as the DAG is switched on. Otherwise the run is skipped, with the reason in the log.
1. `check_training_data`: features joined with matured 90-day labels, split by time into
   train / validation / test windows of
   {s.train.train_months:g}/{s.train.validation_months:g}/{s.train.test_months:g} months
   (scaled down on short histories to {s.train.min_history_months:g} in all; too little
   history fails here with what is missing).
2. `retrain_and_decide`: LightGBM with class weights and early stopping; logged to MLflow
   (params, metrics, model, feature list, data fingerprint, dbt manifest hash, plots, model
   card) and registered as a new version of the registered model. The champion is scored on
   the **same** test window and the promotion policy decides (an AUC gain above
   {s.promotion.min_auc_gain:g} and no regression beyond its tolerances; a first champion
   needs AUC {s.promotion.min_auc_first_champion:g}): promote (alias `champion`
   moves, the old one becomes `previous_champion`), keep (the new version becomes
   `challenger`, for shadow scoring) or await approval (manual policy: promote it with
   `churn_model_promote` or `churnops promote VERSION`). With the phased rollout on
   (`CHURNOPS_ROLLOUT_ENABLED`, now {s.rollout.enabled}) a challenger the rules would promote
   enters it instead (decision `rollout`: shadow, canary, ramp, full, moved by
   `churn_rollout`), or waits while another rollout runs. Every decision and alias move is
   recorded with its reasons (MLflow tags, `ops.model_decisions`, `ops.model_audit_log`).
3. `announce_promotion`: emits the Asset `model_promoted` when a new champion was made.

Only one retrain runs at a time (`max_active_runs=1`), and alias moves take a lock, so two
decisions can never leave two champions.
"""

from __future__ import annotations

from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable, Param, dag, task

from churnops.orchestration.assets import MODEL_PROMOTED, RETRAIN_REQUESTED
from churnops.orchestration.defaults import default_args
from churnops.settings import load_settings

settings = load_settings()


@task
def monthly_retrain_due() -> str:
    from churnops.orchestration.model import skip_unless_scheduled_retrain_due

    return skip_unless_scheduled_retrain_due()


@task(pool=settings.orchestration.warehouse_pool)
def check_training_data() -> dict:
    from churnops.orchestration.model import check_training_data as check

    return check()


@task(pool=settings.orchestration.warehouse_pool, retries=0)
def retrain_and_decide() -> dict:
    """No automatic retry: a second attempt would register a second version."""
    from churnops.orchestration.model import retrain_and_decide as run

    return run()


@task(outlets=[MODEL_PROMOTED])
def announce_promotion(outcome: dict):
    from airflow.sdk import Metadata
    from airflow.sdk.exceptions import AirflowSkipException

    if outcome["action"] != "promote":
        raise AirflowSkipException(f"no new champion: {outcome['action']}")
    yield Metadata(
        MODEL_PROMOTED,
        extra={"version": outcome["version"], "reasons": outcome["reasons"]},
    )


@dag(
    dag_id="churn_retrain",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(settings.orchestration.retrain_cron, timezone="UTC"),
        assets=RETRAIN_REQUESTED,
    ),
    # No start_date: the first monthly run is the next 1st of a month, not one for the
    # month just past the moment the DAG is deployed (CronTriggerTimetable's run_immediately).
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    params={
        "reason": Param("", type="string", description="Why you retrain (kept in the audit)."),
        "require_approval": Param(
            None,
            type=["null", "boolean"],
            description="Override the policy: true = stop before promotion for a person.",
        ),
    },
    tags=["churnops", "model", "training", "registry"],
    doc_md=__doc__.format(s=settings),  # the numbers in force, not the defaults
)
def churn_retrain() -> None:
    outcome = retrain_and_decide()
    monthly_retrain_due() >> check_training_data() >> outcome
    announce_promotion(outcome)


churn_retrain()
