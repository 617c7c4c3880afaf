"""The retraining policy at its edges (seed defaults: AUC < 0.78, drift on >= 3 features,
> 10,000 new churn labels, 14-day cooldown)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from churnops.settings import RetrainingPolicy, load_settings
from churnops.triggers import RetrainSignals, decide_retraining, scheduled_retrain_due

NIGHT = dt.date(2026, 3, 1)
POLICY = RetrainingPolicy()
QUIET = RetrainSignals(
    as_of_date=NIGHT,
    champion_version="3",
    drifted_features=("tenure_days", "invoice_amount_avg_90d"),
    latest_cohort=dt.date(2025, 12, 1),
    latest_cohort_auc=0.78,
    new_churn_labels=10_000,
    labels_since=dt.date(2025, 11, 1),
)


def test_nothing_at_the_edges_fires() -> None:
    decision = decide_retraining(QUIET, POLICY)
    assert not decision.fire and not decision.triggered
    assert any("0.780 >= 0.78" in r for r in decision.reasons)
    assert "2 features drifted (< 3)" in decision.reasons


def test_auc_just_below_the_floor_fires_with_the_cohort_named() -> None:
    decision = decide_retraining(dataclasses.replace(QUIET, latest_cohort_auc=0.7799), POLICY)
    assert decision.fire
    assert decision.reasons == ("AUC 0.780 on the matured cohort 2025-12-01 is below 0.78",)


def test_a_third_drifted_feature_fires_and_names_them_all() -> None:
    signals = dataclasses.replace(QUIET, drifted_features=("tenure_days", "a", "b"))
    decision = decide_retraining(signals, POLICY)
    assert decision.fire
    assert decision.reasons == ("drift on 3 features (>= 3): tenure_days, a, b",)


def test_one_more_new_label_than_the_limit_fires() -> None:
    decision = decide_retraining(dataclasses.replace(QUIET, new_churn_labels=10_001), POLICY)
    assert decision.fire
    assert decision.reasons == ("10,001 new churn labels since 2025-11-01 (> 10,000)",)


def test_every_trigger_that_holds_is_a_reason() -> None:
    signals = dataclasses.replace(
        QUIET,
        latest_cohort_auc=0.70,
        drifted_features=("a", "b", "c", "d"),
        new_churn_labels=20_000,
    )
    assert len(decide_retraining(signals, POLICY).reasons) == 3


def test_no_matured_cohort_is_not_a_trigger() -> None:
    decision = decide_retraining(
        dataclasses.replace(QUIET, latest_cohort=None, latest_cohort_auc=None), POLICY
    )
    assert not decision.fire
    assert "no matured cohort yet" in decision.reasons


def test_no_champion_means_nothing_to_monitor() -> None:
    signals = dataclasses.replace(QUIET, champion_version=None, latest_cohort_auc=0.5)
    decision = decide_retraining(signals, POLICY)
    assert not decision.fire and not decision.triggered


@pytest.mark.parametrize(("days_ago", "fires"), [(1, False), (13, False), (14, True), (30, True)])
def test_the_cooldown_holds_a_trigger_back_for_fourteen_days(days_ago: int, fires: bool) -> None:
    signals = dataclasses.replace(
        QUIET,
        drifted_features=("a", "b", "c"),
        nearest_request=NIGHT - dt.timedelta(days=days_ago),
    )
    decision = decide_retraining(signals, POLICY)
    assert decision.fire is fires
    assert decision.triggered
    assert decision.held_by_cooldown is not fires
    if not fires:
        assert "earlier, within the 14-day cooldown" in decision.reasons[-1]


@pytest.mark.parametrize(("days_later", "fires"), [(1, False), (13, False), (14, True)])
def test_a_later_request_holds_an_earlier_night_back_too(days_later: int, fires: bool) -> None:
    """A backfill that reprocesses nights out of order (or re-runs an old night) must not
    request a second retrain for the drift episode a later night already reported."""
    signals = dataclasses.replace(
        QUIET,
        drifted_features=("a", "b", "c"),
        nearest_request=NIGHT + dt.timedelta(days=days_later),
    )
    decision = decide_retraining(signals, POLICY)
    assert decision.fire is fires and decision.held_by_cooldown is not fires
    if not fires:
        assert f"{days_later} day(s) later, within the 14-day cooldown" in decision.reasons[-1]


def test_the_policy_comes_from_settings() -> None:
    settings = load_settings(
        {
            "CHURNOPS_RETRAIN_MIN_COHORT_AUC": "0.8",
            "CHURNOPS_RETRAIN_DRIFTED_FEATURES": "2",
            "CHURNOPS_RETRAIN_NEW_LABELS": "50000",
            "CHURNOPS_RETRAIN_COOLDOWN_DAYS": "0",
        }
    )
    decision = decide_retraining(QUIET, settings.retraining)
    assert decision.fire
    assert decision.reasons[0].startswith("AUC 0.780 on the matured cohort")
    assert decision.reasons[1].startswith("drift on 2 features (>= 2)")


NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("trained_ago", "due"),
    [
        (dt.timedelta(minutes=5), False),  # the first champion, just before the DAG was on
        (dt.timedelta(days=7) - dt.timedelta(seconds=1), False),
        (dt.timedelta(days=7), True),
        (dt.timedelta(days=31), True),
    ],
)
def test_the_monthly_run_trains_unless_a_model_is_younger_than_the_gap(
    trained_ago: dt.timedelta, due: bool
) -> None:
    decision = scheduled_retrain_due(NOW, NOW - trained_ago, POLICY)
    assert decision.due is due
    assert decision.reason.startswith("monthly retrain due" if due else "monthly retrain not due")
    assert (NOW - trained_ago).strftime("%Y-%m-%d %H:%M") in decision.reason


def test_the_monthly_run_trains_when_no_model_exists() -> None:
    decision = scheduled_retrain_due(NOW, None, POLICY)
    assert decision.due and decision.reason == "no model has been trained yet"


def test_the_monthly_gap_comes_from_settings() -> None:
    policy = load_settings({"CHURNOPS_RETRAIN_SCHEDULED_MIN_GAP_DAYS": "0"}).retraining
    assert policy.scheduled_min_gap_days == 0
    assert scheduled_retrain_due(NOW, NOW, policy).due


def _estimates(*aucs: float, newest: dt.date = NIGHT) -> tuple[tuple[dt.date, float], ...]:
    return tuple((newest - dt.timedelta(days=i), auc) for i, auc in enumerate(aucs))


def test_three_estimated_nights_below_the_floor_fire_with_the_nights_named() -> None:
    signals = dataclasses.replace(QUIET, estimated_aucs=_estimates(0.771, 0.765, 0.7799))
    decision = decide_retraining(signals, POLICY)
    assert decision.fire
    assert decision.reasons == (
        "estimated AUC below 0.78 on the last 3 nights: 2026-03-01 0.771, 2026-02-28 0.765, "
        "2026-02-27 0.780",
    )


@pytest.mark.parametrize(
    "estimates",
    [
        _estimates(0.77, 0.77, 0.78),  # the third night at the floor
        _estimates(0.77, 0.77),  # only two nights estimated so far
        _estimates(0.77, 0.77, 0.77, newest=NIGHT - dt.timedelta(days=1)),  # none tonight
        (),
    ],
    ids=["one-at-the-floor", "two-nights", "not-tonight", "no-estimates"],
)
def test_fewer_than_three_estimated_nights_below_the_floor_do_not_fire(estimates) -> None:
    decision = decide_retraining(dataclasses.replace(QUIET, estimated_aucs=estimates), POLICY)
    assert not decision.fire and not decision.triggered
    assert any(r.startswith(("estimated AUC", "no estimated AUC")) for r in decision.reasons)


def test_the_estimate_nights_come_from_settings() -> None:
    policy = load_settings({"CHURNOPS_RETRAIN_ESTIMATE_NIGHTS": "2"}).retraining
    signals = dataclasses.replace(QUIET, estimated_aucs=_estimates(0.77, 0.77))
    assert decide_retraining(signals, policy).fire
    assert not decide_retraining(signals, POLICY).fire


DRIFTED = dataclasses.replace(QUIET, drifted_features=("a", "b", "c"))


def test_drift_whose_customers_have_no_matured_label_schedules_a_follow_up() -> None:
    signals = dataclasses.replace(DRIFTED, drifted_customers=4_321, drifted_labelled=12)
    decision = decide_retraining(signals, POLICY)
    assert decision.fire  # the drift-triggered retrain runs as before
    assert decision.follow_up_on == NIGHT + dt.timedelta(days=90)
    assert decision.follow_up_reason == decision.reasons[1]
    assert decision.reasons == (
        "drift on 3 features (>= 3): a, b, c",
        "12 of the 4,321 drifted customers have a matured label since 2025-11-01 (< 1,000): "
        "a retrain cannot learn them yet; follow-up retrain on 2026-05-30, when tonight's "
        "labels have matured",
    )


def test_drift_whose_customers_are_labelled_schedules_nothing() -> None:
    signals = dataclasses.replace(DRIFTED, drifted_customers=4_321, drifted_labelled=1_000)
    decision = decide_retraining(signals, POLICY)
    assert decision.fire and decision.follow_up_on is None
    assert decision.reasons[1] == (
        "1,000 of the 4,321 drifted customers have a matured label since 2025-11-01"
    )


def test_a_follow_up_fires_on_its_night_whatever_drift_and_cooldown_say() -> None:
    signals = dataclasses.replace(
        QUIET,
        follow_up_due="scheduled by the drift of 2026-01-01: 0 of the 900 drifted customers",
        nearest_request=NIGHT - dt.timedelta(days=2),  # inside the cooldown
    )
    decision = decide_retraining(signals, POLICY)
    assert decision.fire and not decision.held_by_cooldown
    assert decision.reasons == (
        "follow-up retrain scheduled by the drift of 2026-01-01: 0 of the 900 drifted customers",
    )
    assert decision.follow_up_on is None  # a follow-up does not schedule another
