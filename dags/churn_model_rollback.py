"""
### churn_model_rollback: roll the rollout back, or the champion to the previous one

Trigger with a reason when a model misbehaves. With a rollout in progress
(`churn_rollout`) it is rolled back: the challenger loses its alias and serves nobody from
the next scoring (at full, `champion` goes back to the previous champion). Otherwise
`champion` moves back to `previous_champion`; the move is appended to the audit log (when, from, to, why, which run
and user). Fails with a clear message when there is no previous champion. Same as
`churnops rollback --reason ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task

from churnops.orchestration.defaults import default_args
from churnops.settings import load_settings

settings = load_settings()


# The audit log is in the warehouse: the move takes the warehouse slot like every writer.
@task(retries=0, pool=settings.orchestration.warehouse_pool)
def rollback(params: dict | None = None) -> list[str]:
    from churnops.orchestration.model import rollback_champion

    return rollback_champion(params["reason"])


@dag(
    dag_id="churn_model_rollback",
    schedule=None,
    start_date=dt.datetime.combine(settings.orchestration.manual_start, dt.time(), tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    params={"reason": Param(type="string", minLength=3, description="Why roll back.")},
    tags=["churnops", "model", "registry", "manual"],
    doc_md=__doc__,
)
def churn_model_rollback() -> None:
    rollback()


churn_model_rollback()
