"""Monitoring on a real warehouse and registry: 60 baseline nights raise no retraining
request (no false alarms), and matured cohorts get the served scores' AUC, recall,
precision and F1.

The 60 nights run the nightly task bodies in-process (score, drift report, retraining
policy) without the scheduler, which would take half an hour here; the scheduler path is
covered by tests/e2e/test_closed_loop.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
from sklearn.metrics import roc_auc_score

from churnops.settings import Settings
from tests.helpers import warehouse_of
from tests.trained_state import trained_state

pytestmark = pytest.mark.integration

BASELINE_NIGHTS = 60


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return trained_state(tmp_path_factory.mktemp("monitoring"))


def _nights(settings: Settings, count: int, end: dt.date) -> list[dt.date]:
    return [end - dt.timedelta(days=count - 1 - i) for i in range(count)]


def test_sixty_baseline_nights_raise_no_retraining_request(settings: Settings) -> None:
    from churnops.monitor.nightly import monitor_night
    from churnops.score import score_day
    from churnops.stores import stores_for
    from churnops.triggers.signals import evaluate_retraining

    stores = stores_for(settings)
    nights = _nights(settings, BASELINE_NIGHTS, settings.simulation.history_end)
    drifted_counts = []
    for night in nights:
        score_day(settings, stores.features, stores.scoring, night, say=lambda _line: None)
        result = monitor_night(settings, stores.monitoring, night)
        _, decision = evaluate_retraining(settings, stores.monitoring, night)
        drifted_counts.append(len(result.drift.drifted_features))
        assert not decision.fire and not decision.triggered, (night, decision.reasons)
    # The monitor is not blind: it does measure, and at most a feature or two (the
    # calendar-bound signup cohort) moves on a stationary base.
    assert max(drifted_counts) < settings.retraining.max_drifted_features
    warehouse = warehouse_of(settings)
    [rows] = warehouse.tuples(
        "select count(*), count(distinct as_of_date), sum(fired::int) "
        "from monitoring.retrain_requests"
    )
    [(features,)] = warehouse.tuples("select count(distinct feature) from monitoring.feature_drift")
    assert rows == (BASELINE_NIGHTS, BASELINE_NIGHTS, 0)
    assert features >= 40  # every model feature and the prediction, every night


def test_matured_cohorts_get_the_served_scores_performance(settings: Settings) -> None:
    from churnops.monitor.performance import update_cohort_performance
    from churnops.score import score_day
    from churnops.stores import stores_for

    stores = stores_for(settings)
    monitoring = stores.monitoring
    warehouse = monitoring.warehouse
    cohorts = _nights(settings, 3, settings.simulation.history_end - dt.timedelta(days=120))
    for night in cohorts:
        score_day(settings, stores.features, stores.scoring, night, say=lambda _line: None)
    tonight = cohorts[-1] + dt.timedelta(days=settings.train.label_horizon_days)
    results = {r.as_of_date: r for r in update_cohort_performance(settings, monitoring, tonight)}
    assert set(cohorts) <= set(results)
    for cohort in cohorts:
        served = warehouse.tuples(
            "select p.churn_probability, l.churned_within_90d from scoring.predictions p "
            "join marts.fct_churn_labels l using (as_of_date, customer_id) "
            "where p.as_of_date = ?",
            [cohort],
        )
        expected = roc_auc_score([int(y) for _, y in served], [p for p, _ in served])
        assert results[cohort].auc == pytest.approx(expected, abs=1e-12)
        assert results[cohort].rows == len(served)
        assert 0 < results[cohort].recall <= 1 and 0 < results[cohort].precision <= 1
    [(stored,)] = warehouse.tuples(
        "select count(*) from monitoring.cohort_performance where as_of_date in (?, ?, ?)",
        cohorts,
    )
    assert stored == 3
    # A rerun of the night recomputes the matured cohort in place: no duplicates.
    update_cohort_performance(settings, monitoring, tonight)
    [(again,)] = warehouse.tuples("select count(*) from monitoring.cohort_performance")
    assert again == len(results)


def test_the_cooldown_reads_the_nearest_fired_night_on_either_side(settings: Settings) -> None:
    """The policy's cooldown input comes from the recorded evaluations: the nearest other
    night that fired, earlier or later (a backfill may run nights out of order)."""
    import pyarrow as pa

    from churnops.monitor.store import RETRAIN_REQUESTS
    from churnops.stores import stores_for
    from churnops.triggers.signals import read_signals
    from churnops.warehouse import utc_now

    monitoring = stores_for(settings).monitoring
    night = settings.simulation.history_end - dt.timedelta(days=200)

    def record(day: dt.date, fired: bool) -> None:
        row = {
            "as_of_date": day,
            "champion_version": "1",
            "fired": fired,
            "triggered": True,
            "reasons": ["drift on 3 features"],
            "held_by_cooldown": False,
            "evaluated_at": utc_now(),
            "run_id": "t",
        }
        monitoring.ensure()
        with monitoring.warehouse.transaction() as session:
            session.insert(RETRAIN_REQUESTS, pa.Table.from_pylist([row]))

    record(night + dt.timedelta(days=5), fired=True)
    record(night + dt.timedelta(days=2), fired=False)  # held: not a request
    assert read_signals(settings, monitoring, night).nearest_request == night + dt.timedelta(days=5)
    record(night - dt.timedelta(days=3), fired=True)
    assert read_signals(settings, monitoring, night).nearest_request == night - dt.timedelta(days=3)
    record(night, fired=True)  # the night's own earlier evaluation does not hold it back
    assert read_signals(settings, monitoring, night).nearest_request == night - dt.timedelta(days=3)
