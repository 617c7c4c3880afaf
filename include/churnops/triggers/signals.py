"""The retraining policy's inputs, read from the warehouse and the registry for one night,
and the record of every evaluation (``monitoring.retrain_requests``)."""

from __future__ import annotations

import datetime as dt

from churnops.features.store import LABEL_COLUMN, LABELS_TABLE
from churnops.monitor.store import (
    DRIFT_POPULATION_TABLE,
    DRIFT_SUMMARY_TABLE,
    PERFORMANCE_ESTIMATES_TABLE,
    RETRAIN_FOLLOW_UPS_TABLE,
    RETRAIN_REQUESTS_TABLE,
    MonitoringStore,
)
from churnops.settings import Settings
from churnops.triggers.policy import RetrainDecision, RetrainSignals, decide_retraining
from churnops.warehouse import utc_now


def read_signals(
    settings: Settings, monitoring: MonitoringStore, as_of_date: dt.date
) -> RetrainSignals:
    """The policy's inputs for the night: the champion's drift and latest matured cohort,
    the churn labels since its training cutoff and the nearest night that fired (all read
    from ``monitoring``); the champion and its cutoff come from the registry."""
    from churnops.monitor.performance import latest_cohort
    from churnops.registry import current_aliases
    from churnops.registry.champion import training_cutoff

    champion = current_aliases(settings).get("champion")
    if champion is None:
        return RetrainSignals(as_of_date, None)
    drift = monitoring.rows(
        f"select drifted_features from {DRIFT_SUMMARY_TABLE} "
        "where as_of_date = ? and model_version = ?",
        [as_of_date, champion],
    )
    cohort = latest_cohort(monitoring, as_of_date)
    cutoff = training_cutoff(settings, champion)
    # New churn outcomes: customers whose churn shows in a label after the cutoff (each
    # churner is positive on every as-of date of the 90 days before leaving: count once).
    new_labels = monitoring.rows(
        f"select count(distinct customer_id) as n from {LABELS_TABLE} "
        f"where {LABEL_COLUMN} = 1 and as_of_date > ? and as_of_date <= ?",
        [cutoff or dt.date.min, as_of_date],
    )
    # The nearest other night that fired, before or after this one (a backfill may
    # process nights out of order; ties go to the earlier night).
    nearest = monitoring.rows(
        f"select as_of_date as night from {RETRAIN_REQUESTS_TABLE} "
        "where fired and as_of_date <> ? "
        "order by abs(as_of_date - cast(? as date)), as_of_date limit 1",
        [as_of_date, as_of_date],
    )
    estimated = monitoring.rows(
        f"select as_of_date, estimated_auc from {PERFORMANCE_ESTIMATES_TABLE} "
        "where model_version = ? and as_of_date <= ? and estimated_auc is not null "
        "order by as_of_date desc limit ?",
        [champion, as_of_date, settings.retraining.estimate_nights],
    )
    population = monitoring.rows(
        f"select customers, labelled, labelled_by_chance from {DRIFT_POPULATION_TABLE} "
        "where as_of_date = ? and model_version = ?",
        [as_of_date, champion],
    )
    follow_up = monitoring.rows(
        f"select requested_on, reason from {RETRAIN_FOLLOW_UPS_TABLE} where due_on = ?",
        [as_of_date],
    )
    return RetrainSignals(
        as_of_date=as_of_date,
        champion_version=champion,
        drifted_features=tuple(drift[0]["drifted_features"]) if drift else (),
        latest_cohort=cohort.as_of_date if cohort else None,
        latest_cohort_auc=cohort.auc if cohort else None,
        new_churn_labels=int(new_labels[0]["n"]) if new_labels else 0,
        labels_since=cutoff,
        nearest_request=nearest[0]["night"] if nearest else None,
        estimated_aucs=tuple((r["as_of_date"], float(r["estimated_auc"])) for r in estimated),
        drifted_customers=int(population[0]["customers"]) if population else None,
        drifted_labelled=(
            max(0, int(population[0]["labelled"]) - int(population[0]["labelled_by_chance"]))
            if population
            else None
        ),
        follow_up_due=(
            f"scheduled by the drift of {follow_up[0]['requested_on']}: {follow_up[0]['reason']}"
            if follow_up
            else None
        ),
    )


def evaluate_retraining(
    settings: Settings,
    monitoring: MonitoringStore,
    as_of_date: dt.date,
    run_id: str | None = None,
) -> tuple[RetrainSignals, RetrainDecision]:
    """Read the signals, decide, and record the evaluation in ``monitoring`` (replacing
    the night's row, and the follow-up it schedules)."""
    signals = read_signals(settings, monitoring, as_of_date)
    decision = decide_retraining(signals, settings.retraining)
    monitoring.replace_follow_up_of(
        as_of_date,
        {
            "due_on": decision.follow_up_on,
            "requested_on": as_of_date,
            "reason": decision.follow_up_reason,
            "scheduled_at": utc_now(),
        }
        if decision.follow_up_on
        else None,
    )
    monitoring.replace_retrain_request(
        {
            "as_of_date": as_of_date,
            "champion_version": signals.champion_version,
            "fired": decision.fire,
            "triggered": decision.triggered,
            "reasons": list(decision.reasons),
            "held_by_cooldown": decision.held_by_cooldown,
            "evaluated_at": utc_now(),
            "run_id": run_id,
        }
    )
    return signals, decision
