"""Monitor one night: drift of the served night against the champion's training data,
the performance estimated from the night's scores (CBPE), and the performance of every
cohort whose labels matured.

The drift is measured for the model that served the night (``served_by = 'champion'``
rows of ``scoring.predictions``): its reference is the sample of its own training rows
stored with its registered version, so the comparison is with exactly what it learned from.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings
from churnops.warehouse import utc_now

if TYPE_CHECKING:
    import pandas as pd

    from churnops.estimation import EstimatedPerformance
    from churnops.monitor.drift import DriftResult
    from churnops.monitor.performance import CohortPerformance
    from churnops.monitor.population import DriftedPopulation
    from churnops.monitor.store import MonitoringStore
    from churnops.storage import SharedFiles

log = logging.getLogger(__name__)


class NightNotScored(RuntimeError):
    """No champion-served predictions for the night: there is nothing to monitor."""


@dataclass(frozen=True)
class MonitoringResult:
    drift: DriftResult
    cohorts: list[CohortPerformance]
    # None for a version trained before its performance reference was logged.
    estimate: EstimatedPerformance | None = None
    # Only on a night whose drift fires the retraining trigger.
    population: DriftedPopulation | None = None
    # The sampled online answers of the latest served night (``online_traffic``).
    online: dict[str, object] | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "as_of_date": self.drift.as_of_date.isoformat(),
            "model_version": self.drift.model_version,
            "drifted_features": self.drift.drifted_features,
            "share_drifted": round(self.drift.share_drifted, 4),
            "prediction_drifted": self.drift.prediction_drifted,
            "report": str(self.drift.html_path),
            "cohorts": [c.describe() for c in self.cohorts],
            "estimate": self.estimate.describe() if self.estimate else None,
            "drifted_population": self.population.describe() if self.population else None,
            "online_traffic": self.online,
        }


def served_night(monitoring: MonitoringStore, as_of_date: dt.date) -> tuple[str, pd.DataFrame]:
    """(champion version, the night's features with its served score) for the night."""
    from churnops.train.frame import CATEGORICAL_FEATURES

    versions = monitoring.champion_versions_served(as_of_date)
    if not versions:
        raise NightNotScored(
            f"no champion-served predictions for {as_of_date}: score the night first "
            "(the nightly DAG's score task)"
        )
    version = versions[0]
    current = monitoring.served_features(as_of_date, version)
    for column in CATEGORICAL_FEATURES:
        if column in current.columns:
            current[column] = current[column].astype("category")
    return str(version), current


def monitor_night(
    settings: Settings,
    monitoring: MonitoringStore,
    as_of_date: dt.date,
    files: SharedFiles | None = None,
) -> MonitoringResult:
    """Drift report (HTML, JSON, tables) for the night, then the matured cohorts; the night
    is read from, and the results written to, ``monitoring``; the report files go under
    ``files`` (the shared files; the process's own unless given)."""
    from churnops.monitor.drift import ReportNote, drift_report, persist_drift
    from churnops.monitor.performance import update_cohort_performance
    from churnops.monitor.reference import load_reference
    from churnops.monitor.store import online_traffic

    version, current = served_night(monitoring, as_of_date)
    reference = load_reference(settings, version)
    estimate = estimate_night(settings, monitoring, as_of_date, version, current)
    online = online_traffic(monitoring, as_of_date)
    notes = []
    if estimate:
        notes.append(
            ReportNote(
                "estimate",
                "Estimated performance",
                f"(CBPE, from the night's scores alone): {estimate.describe()}",
            )
        )
    if online:
        log.info("online traffic: %s", describe_online_traffic(online))
        notes.append(ReportNote("online", "Online traffic", describe_online_traffic(online)))
    drift = drift_report(settings, as_of_date, version, reference, current, files, notes=notes)
    persist_drift(monitoring, drift)
    population = None
    if len(drift.drifted_features) >= settings.retraining.max_drifted_features:
        population = record_drifted_population(settings, monitoring, drift, reference, current)
    cohorts = update_cohort_performance(settings, monitoring, as_of_date)
    return MonitoringResult(drift, cohorts, estimate, population, online)


def describe_online_traffic(online: dict[str, Any]) -> str:
    """One line on the real-time service's sampled answers (``online_traffic``)."""
    difference = online["max_difference"]
    return (
        f"{online['answers']:,} sampled answers of the real-time service on the features of "
        f"{online['night']} ({online['customers']:,} customers, {online['stale']:,} stale, "
        f"{online['canary']:,} served by the challenger); mean score "
        f"{online['mean_online'] or 0.0:.4f} online vs {online['mean_batch'] or 0.0:.4f} "
        "batch for the same customers, largest difference "
        + (f"{difference:.2g}" if difference is not None else "n/a (no batch score)")
    )


def record_drifted_population(
    settings: Settings,
    monitoring: MonitoringStore,
    drift: DriftResult,
    reference: pd.DataFrame,
    current: pd.DataFrame,
) -> DriftedPopulation:
    """On a night whose drift fires the trigger: who drifted, and how many of them a
    retrain could learn from (stored for the retraining policy)."""
    from churnops.monitor.population import find_drifted_population
    from churnops.registry.champion import training_cutoff
    from churnops.settings import LABEL_HORIZON_DAYS
    from churnops.train.frame import CATEGORICAL_FEATURES

    cutoff = training_cutoff(settings, drift.model_version)
    labelled_night = drift.as_of_date - dt.timedelta(days=LABEL_HORIZON_DAYS)
    features = [f for f in drift.drifted_features if f in current.columns]
    matured = monitoring.night_features(labelled_night, features)
    if matured.empty:
        # A history shorter than the label horizon: the training sample stands in.
        log.info(
            "no features for %s: the drifted population is measured against the "
            "champion's training sample",
            labelled_night,
        )
        matured = reference
    population = find_drifted_population(
        matured,
        current,
        features,
        [c for c in features if c in CATEGORICAL_FEATURES],
        monitoring.labelled_customers(cutoff, labelled_night),
        as_of_date=drift.as_of_date,
        model_version=drift.model_version,
        labels_since=cutoff,
    )
    monitoring.replace_drift_population(
        {
            "as_of_date": population.as_of_date,
            "model_version": population.model_version,
            "features": list(population.features),
            "customers": population.customers,
            "base": population.base,
            "labelled": population.labelled,
            "labelled_by_chance": population.labelled_by_chance,
            "labels_since": population.labels_since,
            "computed_at": utc_now(),
        }
    )
    log.info("%s: %s", drift.as_of_date, population.describe())
    return population


def estimate_night(
    settings: Settings,
    monitoring: MonitoringStore,
    as_of_date: dt.date,
    version: str,
    current: pd.DataFrame,
) -> EstimatedPerformance | None:
    """The night's performance estimated from the champion's served scores, stored by
    night and version; None (and a warning) for a version with no performance reference."""
    from churnops.estimation import estimate_performance
    from churnops.monitor.reference import ReferenceMissing, load_performance_reference
    from churnops.monitor.store import PREDICTION_FEATURE

    try:
        reference = load_performance_reference(settings, version)
    except ReferenceMissing as exc:
        log.warning("no performance estimate for %s: %s", as_of_date, exc)
        return None
    estimate = estimate_performance(reference, current[PREDICTION_FEATURE].to_numpy())
    monitoring.replace_estimate(
        {
            "as_of_date": as_of_date,
            "model_version": version,
            "rows": estimate.rows,
            "flagged": estimate.flagged,
            "threshold": estimate.threshold,
            **{
                f"estimated_{metric}{suffix}": getattr(getattr(estimate, metric), part)
                for metric in ("auc", "precision", "recall", "f1")
                for suffix, part in (("", "value"), ("_lower", "lower"), ("_upper", "upper"))
            },
            "mean_probability": estimate.mean_probability,
            "base_rate": estimate.base_rate,
            "estimated_at": utc_now(),
        }
    )
    log.info("%s v%s: %s", as_of_date, version, estimate.describe())
    return estimate
