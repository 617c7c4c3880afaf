"""Task bodies of the nightly monitoring: Airflow's side of ``churnops.monitor`` and
``churnops.triggers``."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from airflow.sdk import Metadata, get_current_context
from airflow.sdk.exceptions import AirflowSkipException

from churnops.orchestration.assets import RETRAIN_REQUESTED
from churnops.orchestration.defaults import run_day
from churnops.orchestration.outages import reports_outages
from churnops.registry.tracking import registry_outages, require_tracking_server
from churnops.settings import load_settings

log = logging.getLogger(__name__)


@reports_outages
def monitor_night_task() -> dict[str, Any]:
    """Drift report and matured-cohort performance for the run's day."""
    from churnops.monitor.nightly import monitor_night
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    settings = load_settings()
    files = shared_files_for(settings).check()
    with registry_outages(settings):
        result = monitor_night(
            settings, stores_for(settings).monitoring, run_day(get_current_context()), files
        )
    drift = result.drift
    log.info(
        "drift report %s: %d of %d features drifted (%s); prediction drifted: %s",
        drift.html_path,
        len(drift.drifted_features),
        len(drift.input_features),
        ", ".join(drift.drifted_features) or "none",
        "yes" if drift.prediction_drifted else "no",
    )
    return result.as_dict()


@reports_outages
def request_retrain_task() -> Iterator[Metadata]:
    """Evaluate the retraining policy; when it fires, emit ``retrain_requested`` with the
    reasons in the event's extra (the retrain DAG starts from it) and send an alert.
    Otherwise the task is skipped: a successful task with an outlet would emit the event."""
    from churnops.orchestration.alerts import notify_trigger
    from churnops.stores import stores_for
    from churnops.triggers.signals import evaluate_retraining

    context = get_current_context()
    day = run_day(context)
    settings = load_settings()
    require_tracking_server(settings)  # the champion comes from the registry
    with registry_outages(settings):
        signals, decision = evaluate_retraining(
            settings, stores_for(settings).monitoring, day, run_id=context["dag_run"].run_id
        )
    log.info("%s", decision.summary())
    if not decision.fire:
        raise AirflowSkipException(decision.summary())
    notify_trigger(decision.reasons, day, context)
    yield Metadata(
        RETRAIN_REQUESTED,
        extra={
            "as_of_date": day.isoformat(),
            "champion_version": signals.champion_version,
            "reasons": list(decision.reasons),
            "follow_up_on": decision.follow_up_on.isoformat() if decision.follow_up_on else None,
        },
    )
