"""Monitoring on a real warehouse and registry: 60 baseline nights raise no retraining
request (no false alarms), and matured cohorts get the served scores' AUC, recall,
precision and F1.

The 60 nights run the nightly task bodies in-process (score, drift report, retraining
policy) without the scheduler, which would take half an hour here; the scheduler path is
covered by tests/e2e/test_closed_loop.py.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from sklearn.metrics import roc_auc_score

from churnops.settings import Settings
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
    from churnops.triggers.signals import evaluate_retraining

    nights = _nights(settings, BASELINE_NIGHTS, settings.simulation.history_end)
    drifted_counts = []
    for night in nights:
        score_day(settings, night, say=lambda _line: None)
        result = monitor_night(settings, night)
        _, decision = evaluate_retraining(settings, night)
        drifted_counts.append(len(result.drift.drifted_features))
        assert not decision.fire and not decision.triggered, (night, decision.reasons)
    # The monitor is not blind: it does measure, and at most a feature or two (the
    # calendar-bound signup cohort) moves on a stationary base.
    assert max(drifted_counts) < settings.retraining.max_drifted_features
    with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
        rows = con.execute(
            "select count(*), count(distinct as_of_date), sum(fired::int) "
            "from monitoring.retrain_requests"
        ).fetchone()
        features = con.execute(
            "select count(distinct feature) from monitoring.feature_drift"
        ).fetchone()[0]
    assert rows == (BASELINE_NIGHTS, BASELINE_NIGHTS, 0)
    assert features >= 40  # every model feature and the prediction, every night


def test_matured_cohorts_get_the_served_scores_performance(settings: Settings) -> None:
    from churnops.monitor.performance import update_cohort_performance
    from churnops.score import score_day

    cohorts = _nights(settings, 3, settings.simulation.history_end - dt.timedelta(days=120))
    for night in cohorts:
        score_day(settings, night, say=lambda _line: None)
    tonight = cohorts[-1] + dt.timedelta(days=settings.train.label_horizon_days)
    results = {r.as_of_date: r for r in update_cohort_performance(settings, tonight)}
    assert set(cohorts) <= set(results)
    with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
        for cohort in cohorts:
            served = con.execute(
                "select p.churn_probability, l.churned_within_90d from scoring.predictions p "
                "join marts.fct_churn_labels l using (as_of_date, customer_id) "
                "where p.as_of_date = ?",
                [cohort],
            ).fetchall()
            expected = roc_auc_score([int(y) for _, y in served], [p for p, _ in served])
            assert results[cohort].auc == pytest.approx(expected, abs=1e-12)
            assert results[cohort].rows == len(served)
            assert 0 < results[cohort].recall <= 1 and 0 < results[cohort].precision <= 1
        stored = con.execute(
            "select count(*) from monitoring.cohort_performance where as_of_date in (?, ?, ?)",
            cohorts,
        ).fetchone()[0]
    assert stored == 3
    # A rerun of the night recomputes the matured cohort in place: no duplicates.
    update_cohort_performance(settings, tonight)
    with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
        again = con.execute("select count(*) from monitoring.cohort_performance").fetchone()[0]
    assert again == len(results)


def test_the_cooldown_reads_the_nearest_fired_night_on_either_side(settings: Settings) -> None:
    """The policy's cooldown input comes from the recorded evaluations: the nearest other
    night that fired, earlier or later (a backfill may run nights out of order)."""
    from churnops.monitor.store import RETRAIN_REQUESTS_TABLE
    from churnops.triggers.signals import read_signals
    from churnops.warehouse import utc_now

    night = settings.simulation.history_end - dt.timedelta(days=200)

    def record(day: dt.date, fired: bool) -> None:
        with duckdb.connect(str(settings.warehouse.duckdb_path)) as con:
            con.execute(
                f"INSERT INTO {RETRAIN_REQUESTS_TABLE} VALUES (?, '1', ?, true, ?, false, ?, 't')",
                [day, fired, ["drift on 3 features"], utc_now()],
            )

    record(night + dt.timedelta(days=5), fired=True)
    record(night + dt.timedelta(days=2), fired=False)  # held: not a request
    assert read_signals(settings, night).nearest_request == night + dt.timedelta(days=5)
    record(night - dt.timedelta(days=3), fired=True)
    assert read_signals(settings, night).nearest_request == night - dt.timedelta(days=3)
    record(night, fired=True)  # the night's own earlier evaluation does not hold it back
    assert read_signals(settings, night).nearest_request == night - dt.timedelta(days=3)
