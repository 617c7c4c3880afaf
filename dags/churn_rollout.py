"""
### churn_rollout: move a challenger through its phased rollout, one scored night at a time

Runs after every published night of `churn_nightly` (the Asset `scores_published`, whose
extra names the night), and by hand with an `as_of_date`. Nothing happens without a
rollout in progress; a challenger enters one when the champion/challenger decision would
promote it (`CHURNOPS_ROLLOUT_ENABLED`, now {s.rollout.enabled}).

Phases: shadow ({s.rollout.shadow_nights} nights, served to nobody) -> canary
({s.rollout.canary_share:.0%} of customers by a stable hash, {s.rollout.canary_nights}
nights) -> ramp {steps} ({s.rollout.step_nights} nights each) -> full (the challenger is
champion; the old one stays `previous_champion` {s.rollout.keep_previous_days} days, then
is archived). The scoring of the next night serves the new share.

1. `evaluate`: the night's gates (the challenger's scores against the champion's on the
   same customers, the scoring run's errors and time, the estimated AUCs, the canary's
   A/B readout once its labels mature) and the step of the state machine. A failed gate
   rolls back at once. The readout is pending for 90 days: the ramp goes on on the
   leading gates, and a failing readout rolls back whenever it comes (also at full, while
   the old champion is kept).
2. `needs_approval`: only when the step enters the {s.rollout.approval_share:.0%} share
   (the business review) or, with `CHURNOPS_PROMOTION_REQUIRE_APPROVAL`, the canary or
   full; everything after it is skipped otherwise.
3. `approval`: waits under **Browse → Required Actions** with both models' metrics and the
   gates; Approve continues, Reject rolls back, no answer in
   {s.rollout.approval_timeout_hours:g} h counts as Reject.
4. `apply_answer`: carries the answer out; who, when and why go to `ops.model_audit_log`
   and the version's MLflow tags.

One run at a time (`max_active_runs=1`): while an approval waits, later nights queue and
the current phase keeps serving.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import Param, dag, task

from churnops.orchestration.assets import SCORES_PUBLISHED
from churnops.orchestration.defaults import default_args
from churnops.orchestration.rollout import RolloutApproval
from churnops.settings import load_settings

settings = load_settings()


# A retry is safe: a night already recorded changes nothing, alias moves are idempotent.
@task(pool=settings.orchestration.warehouse_pool)
def evaluate() -> dict:
    from churnops.orchestration.rollout import evaluate as run

    return run()


@task.short_circuit(ignore_downstream_trigger_rules=True)
def needs_approval(outcome: dict) -> bool:
    from churnops.orchestration.rollout import needs_approval as check

    return check(outcome)


@task(pool=settings.orchestration.warehouse_pool, trigger_rule="all_done")
def apply_answer(outcome: dict) -> dict:
    """Runs after `approved` whatever it became (skipped on Reject): reads the answer."""
    from churnops.orchestration.rollout import apply_answer as run

    return run(outcome)


@dag(
    dag_id="churn_rollout",
    schedule=[SCORES_PUBLISHED],
    start_date=dt.datetime.combine(settings.orchestration.manual_start, dt.time(), tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    params={
        "as_of_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Evaluate this scored night (default: the night that triggered the run).",
        ),
    },
    tags=["churnops", "model", "rollout"],
    doc_md=__doc__.format(
        s=settings, steps=" -> ".join(f"{share:.0%}" for share in settings.rollout.steps)
    ),
)
def churn_rollout() -> None:
    outcome = evaluate()
    approval = RolloutApproval(
        task_id="approval",
        subject="churnops rollout: v{{ ti.xcom_pull(task_ids='evaluate')['challenger_version'] }}"
        " enters {{ ti.xcom_pull(task_ids='evaluate')['pending_phase'] }}?",
        body="{{ ti.xcom_pull(task_ids='evaluate')['approval_body'] }}",
        defaults="Reject",  # the answer when nobody answers in time
        response_timeout=dt.timedelta(hours=settings.rollout.approval_timeout_hours),
        params={"reason": Param("", type="string", description="Why (kept in the audit log).")},
    )
    approved = EmptyOperator(task_id="approved")  # skipped on Reject: the graph shows it
    answer = apply_answer(outcome)
    needs_approval(outcome) >> approval >> approved >> answer


churn_rollout()
