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
    from churnops.features.store import FEATURES_TABLE
    from churnops.lineage import location_dataset, table_dataset
    from churnops.monitor import store
    from churnops.monitor.nightly import monitor_night
    from churnops.online.samples import move_buffered_samples
    from churnops.orchestration import lineage
    from churnops.score.store import PREDICTIONS_TABLE
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    settings = load_settings()
    files = shared_files_for(settings).check()
    monitoring = stores_for(settings).monitoring
    # The real-time service's sampled answers first, so the report's online section has
    # them (best effort: with Redis down they wait for the next night).
    move_buffered_samples(settings.online, monitoring, say=log.info)
    with registry_outages(settings):
        result = monitor_night(settings, monitoring, run_day(get_current_context()), files)
    drift = result.drift
    written = [
        store.FEATURE_DRIFT_TABLE,
        store.DRIFT_SUMMARY_TABLE,
        store.PERFORMANCE_ESTIMATES_TABLE,
        store.COHORT_PERFORMANCE_TABLE,
    ]
    lineage.report(
        inputs=[
            *lineage.models(settings, [drift.model_version]),
            table_dataset(settings, FEATURES_TABLE),
            table_dataset(settings, PREDICTIONS_TABLE),
        ],
        outputs=[
            *(table_dataset(settings, table) for table in written),
            *([location_dataset(drift.html_path)] if drift.html_path else []),
        ],
    )
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
    from churnops.lineage import table_dataset
    from churnops.monitor import store
    from churnops.orchestration import lineage
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
    lineage.report(
        inputs=[
            *lineage.models(settings, [signals.champion_version]),
            *(
                table_dataset(settings, table)
                for table in (
                    store.DRIFT_SUMMARY_TABLE,
                    store.COHORT_PERFORMANCE_TABLE,
                    store.PERFORMANCE_ESTIMATES_TABLE,
                )
            ),
        ],
        outputs=[table_dataset(settings, store.RETRAIN_REQUESTS_TABLE)],
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
            # The drifted population's matured labels, which the retrain's decision repeats.
            "drifted_labelled": signals.drifted_labelled,
            "drifted_customers": signals.drifted_customers,
        },
    )
