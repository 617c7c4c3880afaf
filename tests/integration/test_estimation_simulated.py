"""Estimated performance (CBPE) on simulated nights whose labels are known.

Each state is trained on as-of dates up to a month before its scenario starts. The month
between is baseline (out of sample, nothing changed); after the start, the scenario:
- ``acquisition_campaign``: covariate shift (a wave of new kinds of customers): the
  estimate must agree with the realized AUC within its band;
- ``price_increase``: concept drift (the same customers churn for a new reason): where the
  estimate cannot follow, and what the matured labels show instead.

Nights are scored and estimated with the nightly task bodies in-process; their labels
mature in the simulated history, so one cohort update fills the realized side.
"""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.settings import Settings, load_settings

pytestmark = pytest.mark.integration

SCENARIO_START = dt.date(2025, 9, 28)
TRAINED_UNTIL = SCENARIO_START - dt.timedelta(days=31)
BASELINE_NIGHTS = [TRAINED_UNTIL + dt.timedelta(days=2 + 2 * i) for i in range(15)]
SCENARIO_NIGHTS = [dt.date(2025, 10, 20) + dt.timedelta(days=3 * i) for i in range(13)]


def scenario_state(tmp_path_factory: pytest.TempPathFactory, scenario: str) -> Settings:
    from churnops.pipeline import bootstrap_history
    from churnops.retrain import retrain
    from churnops.stores import stores_for

    settings = load_settings(
        {
            "CHURNOPS_STATE_DIR": str(tmp_path_factory.mktemp(scenario)),
            "CHURNOPS_SIM_CUSTOMERS": "2000",
            "CHURNOPS_SIM_DAYS": "420",  # the last scenario night's labels mature in it
            "CHURNOPS_SIM_SCENARIO": scenario,
            "CHURNOPS_SIM_SCENARIO_START": SCENARIO_START.isoformat(),
            # A short pre-scenario history: learn from partial 90-day windows too.
            "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY": "false",
        }
    )
    bootstrap_history(settings, say=lambda _line: None)
    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor="pytest",
        reason="trained before the scenario",
        as_of_end=TRAINED_UNTIL,
    )
    assert outcome.action == "promote", outcome.summary
    return settings


def estimate_and_mature(settings: Settings, nights: list[dt.date]) -> dict[dt.date, dict]:
    from churnops.monitor.nightly import estimate_night, served_night
    from churnops.monitor.performance import update_cohort_performance
    from churnops.score import score_day
    from churnops.stores import stores_for

    stores = stores_for(settings)
    for night in nights:
        score_day(settings, stores.features, stores.scoring, night, say=lambda _line: None)
        version, current = served_night(stores.monitoring, night)
        assert estimate_night(settings, stores.monitoring, night, version, current) is not None
    horizon = dt.timedelta(days=settings.train.label_horizon_days)
    update_cohort_performance(settings, stores.monitoring, nights[-1] + horizon)
    return {e["as_of_date"]: e for e in stores.monitoring.estimates() if e["as_of_date"] in nights}


def inside(rows: list[dict]) -> float:
    return sum(
        r["estimated_auc_lower"] <= r["realized_auc"] <= r["estimated_auc_upper"] for r in rows
    ) / len(rows)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, dict[dt.date, dict]]:
    settings = scenario_state(tmp_path_factory, "acquisition_campaign")
    return settings, estimate_and_mature(settings, BASELINE_NIGHTS + SCENARIO_NIGHTS)


@pytest.fixture(scope="module")
def price_increase(tmp_path_factory: pytest.TempPathFactory) -> dict[dt.date, dict]:
    settings = scenario_state(tmp_path_factory, "price_increase")
    return estimate_and_mature(settings, BASELINE_NIGHTS[-5:] + SCENARIO_NIGHTS)


def test_every_night_is_estimated_and_its_realized_side_filled(campaign) -> None:
    _, rows = campaign
    assert set(rows) == set(BASELINE_NIGHTS + SCENARIO_NIGHTS)
    for row in rows.values():
        assert row["realized_rows"] == row["rows"] > 1_500
        assert 0.5 < row["estimated_auc"] < 1 and 0.5 < row["realized_auc"] < 1
        assert row["estimated_auc_lower"] < row["estimated_auc"] < row["estimated_auc_upper"]


def test_on_baseline_nights_the_realized_auc_falls_in_the_band(campaign) -> None:
    _, rows = campaign
    assert inside([rows[n] for n in BASELINE_NIGHTS]) >= 0.9


def test_under_the_campaign_estimate_and_realized_agree_within_the_band(campaign) -> None:
    _, rows = campaign
    shifted = [rows[n] for n in SCENARIO_NIGHTS]
    assert inside(shifted) >= 0.9
    # The campaign is a real shift: the base grows by a third with new customers.
    assert min(r["rows"] for r in shifted) > 1.15 * max(rows[n]["rows"] for n in BASELINE_NIGHTS)


def test_status_shows_estimated_against_realized_and_which_rate_moved(campaign) -> None:
    from churnops.status import collect_status, render_status

    settings, rows = campaign
    report = collect_status(settings)
    table = {r["as_of_date"]: r for r in report["estimated_vs_realized"]}
    assert set(table) == set(rows)
    for night, row in table.items():
        assert row["estimated_auc"] == rows[night]["estimated_auc"]
        assert row["realized_auc"] == rows[night]["realized_auc"]
        assert row["within_band"] == (
            rows[night]["estimated_auc_lower"]
            <= rows[night]["realized_auc"]
            <= rows[night]["estimated_auc_upper"]
        )
    # The campaign's customers churn more than their scores predict: the realized rate
    # moved against the predicted one, on most campaign nights and on no baseline night.
    moved = [
        n
        for n, r in table.items()
        if any("realized churn rate moved" in f for f in r["prior_drift"])
    ]
    assert not set(moved) & set(BASELINE_NIGHTS)
    assert len(set(moved) & set(SCENARIO_NIGHTS)) >= len(SCENARIO_NIGHTS) // 2
    text = render_status(report)
    assert "Estimated against realized AUC (matured nights)" in text
    assert f"AUC estimated    : {report['latest_estimate']['estimated_auc']:.3f}" in text


@pytest.fixture(scope="module")
def campaign_night(campaign):
    """The last campaign night through the whole monitoring task body."""
    from churnops.monitor.nightly import monitor_night
    from churnops.stores import stores_for

    settings, _ = campaign
    return monitor_night(settings, stores_for(settings).monitoring, SCENARIO_NIGHTS[-1])


def test_the_drift_page_opens_with_the_nights_estimate(campaign_night) -> None:
    result = campaign_night
    page = result.drift.html_path.read_text()
    banner = page[page.index('<div id="churnops-estimate"') :][:600]
    assert f"AUC {result.estimate.auc.value:.3f}" in banner
    assert page.index("<body") < page.index('id="churnops-estimate"')


def test_the_campaign_requests_a_retrain_and_a_follow_up_when_its_labels_mature(
    campaign, campaign_night
) -> None:
    """The campaign's customers joined after the champion's cutoff: none has a matured
    label on the campaign night, so the drift request schedules a follow-up 90 days on,
    and that night fires with its reason whatever the drift and the cooldown say."""
    from churnops.stores import stores_for
    from churnops.triggers.signals import evaluate_retraining

    settings, _ = campaign
    monitoring = stores_for(settings).monitoring
    night = SCENARIO_NIGHTS[-1]
    population = campaign_night.population
    assert population is not None, campaign_night.drift.drifted_features
    assert population.customers >= 300 and population.labelled == 0, population.describe()
    _, decision = evaluate_retraining(settings, monitoring, night)
    due = night + dt.timedelta(days=90)
    assert decision.fire and decision.follow_up_on == due, decision.reasons
    assert any(f"follow-up retrain on {due}" in r for r in decision.reasons)
    assert [(f["due_on"], f["requested_on"]) for f in monitoring.follow_ups()] == [(due, night)]
    # A rerun of the night schedules it again, not twice.
    evaluate_retraining(settings, monitoring, night)
    assert len(monitoring.follow_ups()) == 1

    from churnops.status import collect_status, render_status

    assert f"Follow-up retrain: {due} (scheduled by the drift of {night})" in render_status(
        collect_status(settings)
    )
    _, follow_up = evaluate_retraining(settings, monitoring, due)
    assert follow_up.fire and not follow_up.held_by_cooldown
    assert follow_up.reasons[0].startswith(f"follow-up retrain scheduled by the drift of {night}")
    assert follow_up.follow_up_on is None


def test_under_the_price_increase_the_estimate_cannot_follow(price_increase) -> None:
    """Concept drift: the same scores now mean more churn for some customers. The estimate
    stays where the reference put it, the realized AUC falls away below it: only matured
    labels (the cohort AUC, the retraining trigger on it) see this decay."""
    rows = price_increase
    before = [rows[n] for n in BASELINE_NIGHTS[-5:]]
    after = [rows[n] for n in SCENARIO_NIGHTS]

    def mean(values) -> float:
        return sum(values) / len(values)

    estimated_before = mean([r["estimated_auc"] for r in before])
    estimated_after = mean([r["estimated_auc"] for r in after])
    realized_before = mean([r["realized_auc"] for r in before])
    realized_after = mean([r["realized_auc"] for r in after])
    assert abs(estimated_after - estimated_before) < 0.01
    assert realized_after < realized_before - 0.015
    assert realized_after < estimated_after - 0.03
