"""
### churn_model_promote: a person promotes a registered version to champion

For the manual-approval policy (or any deliberate promotion): trigger with the version
(see MLflow, or `churnops status`) and a reason. The current champion becomes
`previous_champion` (available to `churn_model_rollback`), the move is appended to the
audit log with the reason and this run as the actor, and `model_promoted` is emitted.
Same as `churnops promote VERSION --reason ...`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Metadata, Param, dag, task

from churnops.orchestration.assets import MODEL_PROMOTED
from churnops.orchestration.defaults import default_args
from churnops.settings import load_settings

settings = load_settings()


# The audit log is in the warehouse: the move takes the warehouse slot like every writer.
@task(outlets=[MODEL_PROMOTED], retries=0, pool=settings.orchestration.warehouse_pool)
def promote(params: dict | None = None):
    from churnops.orchestration.model import promote_version

    moves = promote_version(str(params["version"]), params["reason"])
    yield Metadata(MODEL_PROMOTED, extra={"version": str(params["version"]), "moves": moves})


@dag(
    dag_id="churn_model_promote",
    schedule=None,
    start_date=dt.datetime.combine(settings.orchestration.manual_start, dt.time(), tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    default_args=default_args(settings),
    params={
        "version": Param(type="string", description="Registered model version to promote."),
        "reason": Param(type="string", minLength=3, description="Why (kept in the audit log)."),
    },
    tags=["churnops", "model", "registry", "manual"],
    doc_md=__doc__,
)
def churn_model_promote() -> None:
    promote()


churn_model_promote()
