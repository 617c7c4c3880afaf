"""The simulated base behaves as specified: churn rate, learnable signal, scenarios."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from churnops.settings import SimulationSettings
from churnops.simulate.drops import DayGenerator
from churnops.simulate.population import build_population, expected_bill_eur

pytestmark = pytest.mark.unit

BASE = SimulationSettings(customers=20_000, seed=11, history_days=547)


def churn_within_90(pop, idx: np.ndarray, day: int) -> np.ndarray:
    return (pop.churn_day[idx] > day) & (pop.churn_day[idx] <= day + 90)


@pytest.fixture(scope="module")
def baseline_population():
    return build_population(BASE, 547)


@pytest.mark.parametrize("day", [0, 120, 240, 360, 455])
def test_ninety_day_churn_rate_is_about_eight_percent(baseline_population, day: int) -> None:
    active = baseline_population.active_on(day)
    rate = churn_within_90(baseline_population, active, day).mean()
    assert 0.065 <= rate <= 0.095, f"90-day churn on day {day}: {rate:.3f}"


def test_base_stays_about_its_size(baseline_population) -> None:
    sizes = [len(baseline_population.active_on(d)) for d in (0, 180, 365, 547)]
    assert all(0.9 * BASE.customers <= s <= 1.1 * BASE.customers for s in sizes), sizes


def _behaviour_frame(settings: SimulationSettings, pop, day: int) -> pd.DataFrame:
    """What a feature pipeline would see on ``day``: 30 days of usage, plus account facts."""
    gen = DayGenerator(settings, pop)
    idx = pop.active_on(day)
    frame = pd.DataFrame({"customer_id": pop.customer_id[idx]})
    sums: dict[str, pd.Series] = {}
    for offset in range(30):
        usage = gen.usage_daily(day - offset).to_pandas().set_index("customer_id")
        for col in ("logins", "calls", "features_used"):
            key = f"{col}_{'7' if offset < 7 else '30'}"
            sums[key] = (
                sums.get(key, 0) + usage[col].reindex(frame.customer_id).fillna(0).to_numpy()
            )
    for key, value in sums.items():
        frame[key] = value
    frame["tenure"] = day - pop.signup_day[idx]
    frame["plan"] = pop.plan_on(idx, day)
    frame["payment"] = pop.payment_on(idx, day)
    frame["channel"] = pop.channel[idx]
    frame["bill"] = expected_bill_eur(pop.plan_on(idx, day), pop.addon_eur[idx])
    frame["y"] = churn_within_90(pop, idx, day).astype(int)
    return frame


def test_churn_is_learnable_but_not_trivial(baseline_population) -> None:
    """A LightGBM on a handful of observable behaviours lands between 0.75 and 0.92 AUC.

    The product's 45 features should get near the seed's 0.84; a near-perfect score would
    mean the simulator leaks its truth, a near-random one that behaviour does not drive churn.
    """
    import lightgbm as lgb

    train = pd.concat([_behaviour_frame(BASE, baseline_population, d) for d in (150, 240)])
    test = _behaviour_frame(BASE, baseline_population, 360)
    features = [c for c in train.columns if c not in {"customer_id", "y"}]
    model = lgb.LGBMClassifier(
        n_estimators=250, learning_rate=0.05, min_child_samples=100, verbose=-1
    ).fit(train[features], train.y)
    auc = roc_auc_score(test.y, model.predict_proba(test[features])[:, 1])
    assert 0.75 <= auc <= 0.92, f"AUC {auc:.3f}"


# ------------------------------------------------------------------------- scenarios
START = BASE.history_start + dt.timedelta(days=300)


def scenario(name: str) -> SimulationSettings:
    return dataclasses.replace(BASE, scenario=name, scenario_start=START)


@pytest.mark.parametrize("name", ["acquisition_campaign", "price_increase"])
def test_scenarios_equal_the_baseline_before_they_start(baseline_population, name: str) -> None:
    day = 299
    pop = build_population(scenario(name), day)
    base = build_population(BASE, day)
    assert np.array_equal(pop.customer_id, base.customer_id)
    assert np.array_equal(pop.churn_day, base.churn_day)
    gen, base_gen = DayGenerator(scenario(name), pop), DayGenerator(BASE, base)
    for table in ("usage_daily", "invoices", "customers"):
        assert gen.table(table, day).equals(base_gen.table(table, day)), table


def _active_profile(settings: SimulationSettings, day: int) -> pd.DataFrame:
    pop = build_population(settings, day)
    gen = DayGenerator(settings, pop)
    idx = pop.active_on(day)
    tenure = pd.Series(day - pop.signup_day[idx], index=pop.customer_id[idx])
    # Each active customer's latest invoice amount over the last billing cycle.
    invoices = pd.concat([gen.invoices(day - k).to_pandas() for k in range(30)])
    latest = invoices.groupby("customer_id")["list_amount"].last()
    return pd.DataFrame({"tenure": tenure, "invoice": latest.reindex(tenure.index)})


def test_acquisition_campaign_shifts_tenure_and_invoice_amounts() -> None:
    day = 300 + 30
    base = _active_profile(BASE, day)
    campaign = _active_profile(scenario("acquisition_campaign"), day)
    assert len(campaign) > 1.08 * len(base), "the campaign should grow the base"
    ks_tenure = stats.ks_2samp(base.tenure, campaign.tenure)
    ks_invoice = stats.ks_2samp(base.invoice.dropna(), campaign.invoice.dropna())
    assert ks_tenure.pvalue < 1e-6 and ks_invoice.pvalue < 1e-6
    assert campaign.tenure.median() < 0.9 * base.tenure.median()
    assert campaign.invoice.mean() > 1.08 * base.invoice.mean()


def _billing_churn_ratio(settings: SimulationSettings, day: int) -> float:
    """90-day churn of the priciest bill quartile over the cheapest quartile."""
    pop = build_population(settings, day + 90)
    idx = pop.active_on(day)
    bill = expected_bill_eur(pop.plan0[idx], pop.addon_eur[idx])
    churn = churn_within_90(pop, idx, day)
    low, high = np.quantile(bill, [0.25, 0.75])
    return churn[bill >= high].mean() / churn[bill <= low].mean()


def test_price_increase_changes_the_billing_relation_not_the_distributions() -> None:
    day = 305
    base_ratio = _billing_churn_ratio(BASE, day)
    price_ratio = _billing_churn_ratio(scenario("price_increase"), day)
    assert price_ratio > 1.8 * base_ratio, (base_ratio, price_ratio)
    # Covariates do not move: invoice amounts of the active base look the same.
    base = _active_profile(BASE, day)
    price = _active_profile(scenario("price_increase"), day)
    assert stats.ks_2samp(base.invoice.dropna(), price.invoice.dropna()).pvalue > 0.01
    assert abs(price.tenure.median() / base.tenure.median() - 1) < 0.05
