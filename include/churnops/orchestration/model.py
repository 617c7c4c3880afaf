"""Task bodies of the model DAGs (retrain, promote, rollback): Airflow's side of
``churnops.train`` and ``churnops.registry``."""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from airflow.sdk import get_current_context

from churnops.settings import load_settings

if TYPE_CHECKING:
    from churnops.retrain import FollowUp

log = logging.getLogger(__name__)


def actor() -> str:
    """Who acts in the audit log: this DAG run (and the user who triggered it, if any)."""
    context = get_current_context()
    run = context["dag_run"]
    user = getattr(run, "triggering_user_name", None)
    who = f"airflow:{run.dag_id}/{run.run_id}"
    return f"{who} by {user}" if user else who


def trigger_follow_up() -> FollowUp | None:
    """The follow-up retrain the triggering request scheduled, if any (its extra: the
    night, and the drifted population's matured labels it counted)."""
    from churnops.retrain import FollowUp

    context = get_current_context()
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            extra = event.extra or {}
            if extra.get("follow_up_on"):
                labelled, customers = extra.get("drifted_labelled"), extra.get("drifted_customers")
                return FollowUp(
                    on=dt.date.fromisoformat(str(extra["follow_up_on"])),
                    drifted_labelled=None if labelled is None else int(labelled),
                    drifted_customers=None if customers is None else int(customers),
                )
    return None


def trigger_reasons() -> str:
    """Why this retrain runs: the asset events' reasons, the form's reason, or the schedule."""
    context = get_current_context()
    reasons: list[str] = []
    for events in (context.get("triggering_asset_events") or {}).values():
        for event in events:
            extra = event.extra or {}
            reasons.extend(str(r) for r in extra.get("reasons", []))
    if context["params"].get("reason"):
        reasons.append(str(context["params"]["reason"]))
    return "; ".join(reasons) or f"{context['dag_run'].run_type} run"


def skip_unless_scheduled_retrain_due() -> str:
    """A scheduled (monthly) run trains only when no model was trained in the last days
    (``churnops.triggers.scheduled_retrain_due``); asset-triggered and manual runs always
    go on. A run that is not due is skipped, with the reason in the log."""
    import datetime as dt

    from airflow.sdk.exceptions import AirflowSkipException

    from churnops.registry import newest_version_created_at
    from churnops.triggers import scheduled_retrain_due

    run_type = get_current_context()["dag_run"].run_type
    if run_type != "scheduled":
        return f"{run_type} run: the retrain goes on"
    settings = load_settings()
    decision = scheduled_retrain_due(
        dt.datetime.now(dt.UTC), newest_version_created_at(settings), settings.retraining
    )
    log.info("%s", decision.reason)
    if not decision.due:
        raise AirflowSkipException(decision.reason)
    return decision.reason


def check_training_data() -> dict[str, Any]:
    """Fail early, and readably, when the warehouse lacks the history to train on."""
    from churnops.stores import stores_for
    from churnops.train.frame import plan_split

    settings = load_settings()
    # Planned on the labels alone: the check reads no feature row (training loads them).
    planned = plan_split(stores_for(settings).features, params=settings.train)
    windows = {k: str(v) for k, v in vars(planned).items()}
    log.info("training windows: %s", windows)
    return windows


def retrain_and_decide() -> dict[str, Any]:
    """Train, register, evaluate against the champion on the same window, decide, act."""
    from churnops.features.store import FEATURES_TABLE, LABELS_TABLE
    from churnops.lineage import table_dataset
    from churnops.orchestration import lineage
    from churnops.retrain import retrain
    from churnops.stores import stores_for

    context = get_current_context()
    approval = context["params"].get("require_approval")
    settings = load_settings()
    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor=actor(),
        reason=trigger_reasons(),
        require_approval=approval,
        follow_up=trigger_follow_up(),
    )
    # Trained on the features, judged against the champion: a new registered version.
    lineage.report(
        inputs=[
            table_dataset(settings, FEATURES_TABLE),
            table_dataset(settings, LABELS_TABLE),
            *lineage.models(settings, [outcome.champion_version]),
        ],
        outputs=lineage.models(settings, [outcome.version]),
    )
    log.info("%s", outcome.summary)
    return {
        "version": outcome.version,
        "action": outcome.action,
        "reasons": list(outcome.decision.reasons),
        "champion_before": outcome.champion_version,
        "champion_after": outcome.champion_after,
        "test_auc": outcome.challenger_metrics.auc,
    }


def promote_version(version: str, reason: str) -> list[str]:
    from churnops.registry import promote

    moves = promote(load_settings(), version, reason, actor())
    return [str(m) for m in moves]


def rollback_champion(reason: str) -> list[str]:
    """The rollout in progress, else the champion (``churnops.deployment.ops.rollback_model``)."""
    from churnops.deployment.ops import rollback_model

    lines = rollback_model(load_settings(), reason, actor())
    for line in lines:
        log.info("%s", line)
    return lines


def keep_training_copies_task() -> dict[str, Any]:
    """The nightly's columnar copies of the snapshots a training started tonight may read."""
    from churnops.orchestration.defaults import run_day
    from churnops.stores import stores_for
    from churnops.train.frame import keep_training_copies

    settings = load_settings()
    features = stores_for(settings).features
    return keep_training_copies(features, run_day(get_current_context()), settings.train)
