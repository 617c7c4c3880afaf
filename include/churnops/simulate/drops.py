"""What the source system exports each day: one Arrow table per landing table.

Every table for day ``t`` is a function of the population and of random streams keyed by
(seed, stream, t) only, so days can be generated in any order, alone or in a range, with
identical results. Payments are the one table that looks back: an invoice issued on day
``u`` is paid on a later day, so the invoice book regenerates the issue days it needs.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from churnops.contracts import (
    ACQUISITION_CHANNELS,
    CHURN_REASONS,
    CUSTOMER_CHANGE_TYPES,
    LANDING_TABLES,
    PAYMENT_METHODS,
    PLAN_TYPES,
    REGIONS,
    TICKET_CATEGORIES,
    TICKET_CHANNELS,
    TICKET_PRIORITIES,
)
from churnops.settings import SimulationSettings
from churnops.simulate.population import (
    NEVER,
    PLAN_FEES_EUR,
    PROMO_DAYS,
    PROMO_DISCOUNT_SHARE,
    STREAM_INVOICES,
    STREAM_TICKETS,
    STREAM_USAGE,
    Population,
    day_of,
    rng_for,
)

INVOICE_DUE_DAYS = 14
BILLING_CYCLE_DAYS = 30
MAX_DAYS_LATE = 60
# The oldest issue day whose invoices can still be paid on a given day.
PAYMENT_LOOKBACK_DAYS = INVOICE_DUE_DAYS + MAX_DAYS_LATE
LATE_PAYMENT_METHOD_EFFECT = np.array([0.0, -1.6, 0.1, 1.0])  # card, direct_debit, paypal, invoice


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _labels(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), pa.array(names)).cast(
        pa.string()
    )


def _table(name: str, columns: dict[str, object]) -> pa.Table:
    """Build a table with exactly the contract's schema for ``name``."""
    schema = LANDING_TABLES[name].arrow_schema()
    arrays = []
    for field in schema:
        value = columns[field.name]
        if isinstance(value, pa.Array):
            arrays.append(value.cast(field.type))
        else:
            arrays.append(pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


class DayGenerator:
    """Generates each landing table for any day of a population."""

    def __init__(self, settings: SimulationSettings, population: Population) -> None:
        self.settings = settings
        self.pop = population
        self._invoice_days: dict[int, dict[str, np.ndarray]] = {}

    # ---------------------------------------------------------------- customers
    def customers(self, t: int) -> pa.Table:
        pop = self.pop
        active = pop.active_on(t)
        parts = []
        if t == 0:
            parts.append((active[pop.signup_day[active] < 0], 0))  # the base, as a snapshot
        parts.append((np.flatnonzero(pop.signup_day == t), 1))
        parts.append((active[pop.plan_change_day[active] == t], 2))
        parts.append((active[pop.payment_change_day[active] == t], 3))
        idx = np.concatenate([p for p, _ in parts])
        kind = np.concatenate([np.full(len(p), k, dtype=np.int8) for p, k in parts])
        # One record per customer per day: the first reason wins (snapshot > signup > change).
        idx, first = np.unique(idx, return_index=True)
        kind = kind[first]
        plan = pop.plan_on(idx, t)
        day = day_of(self.settings, t)
        return _table(
            "customers",
            {
                "customer_id": pop.customer_id[idx],
                "effective_date": np.full(len(idx), np.datetime64(day, "D")),
                "change_type": _labels(kind, CUSTOMER_CHANGE_TYPES),
                "signup_date": np.datetime64(self.settings.history_start, "D")
                + pop.signup_day[idx].astype("timedelta64[D]"),
                "plan_type": _labels(plan, PLAN_TYPES),
                "payment_method": _labels(pop.payment_on(idx, t), PAYMENT_METHODS),
                "acquisition_channel": _labels(pop.channel[idx], ACQUISITION_CHANNELS),
                "region": _labels(pop.region[idx], REGIONS),
                "monthly_fee": PLAN_FEES_EUR[plan],
                "is_promo": pop.is_promo[idx],
            },
        )

    # ---------------------------------------------------------------- usage
    def usage_daily(self, t: int) -> pa.Table:
        pop = self.pop
        idx = pop.active_on(t)
        n = len(idx)
        rng = rng_for(self.settings, STREAM_USAGE, t)
        e = pop.engagement_on(idx, t)
        plan = pop.plan_on(idx, t)
        logins = rng.poisson(np.exp(0.35 + 0.55 * e))
        calls = rng.poisson(np.exp(1.0 + 0.30 * e + 0.15 * plan))
        data_gb = rng.gamma(2.0, np.exp(-0.4 + 0.35 * e + 0.35 * plan) / 2.0)
        # The sum of `logins` Gamma(2, s) sessions is Gamma(2 * logins, s).
        minutes = np.where(
            logins > 0, rng.gamma(np.maximum(2.0 * logins, 1e-9), np.exp(1.8 + 0.2 * e) / 2.0), 0.0
        )
        features = rng.binomial(12, _sigmoid(-0.9 + 0.6 * e + 0.6 * pop.adoption[idx]))
        features = np.where(logins > 0, features, 0)
        return _table(
            "usage_daily",
            {
                "customer_id": pop.customer_id[idx],
                "usage_date": np.full(n, np.datetime64(day_of(self.settings, t), "D")),
                "calls": np.minimum(calls, 500).astype(np.int32),
                "data_gb": np.round(np.minimum(data_gb, 200.0), 3),
                "logins": np.minimum(logins, 200).astype(np.int32),
                "session_minutes": np.round(np.minimum(minutes, 1440.0), 1),
                "features_used": features.astype(np.int32),
            },
        )

    # ---------------------------------------------------------------- tickets
    def support_tickets(self, t: int) -> pa.Table:
        pop = self.pop
        idx = pop.active_on(t)
        rng = rng_for(self.settings, STREAM_TICKETS, t)
        disengaged = pop.disengaged_on(idx, t)
        rate = np.exp(-4.3 + 0.7 * pop.ticket_propensity[idx] + 1.3 * disengaged)
        counts = rng.poisson(rate)
        owner = np.repeat(np.arange(len(idx)), counts)
        n = len(owner)
        unhappy = disengaged[owner]
        u = rng.random(n)
        # billing, technical, account, cancellation: the unhappy ask how to leave.
        cut_normal = np.cumsum([0.32, 0.45, 0.18])
        cut_unhappy = np.cumsum([0.25, 0.25, 0.12])
        category = np.where(
            unhappy, np.searchsorted(cut_unhappy, u), np.searchsorted(cut_normal, u)
        )
        priority = rng.choice(3, n, p=[0.5, 0.35, 0.15])
        channel = rng.choice(3, n, p=[0.35, 0.30, 0.35])
        seconds = rng.integers(0, 86_400, n)
        day = day_of(self.settings, t)
        stamp = f"{day:%Y%m%d}"
        created = np.datetime64(day, "us") + (seconds * 1_000_000).astype("timedelta64[us]")
        return _table(
            "support_tickets",
            {
                "ticket_id": [f"TCK-{stamp}-{i:06d}" for i in range(n)],
                "customer_id": pop.customer_id[idx][owner],
                "created_at": created,
                "category": _labels(category, TICKET_CATEGORIES),
                "priority": _labels(priority, TICKET_PRIORITIES),
                "channel": _labels(channel, TICKET_CHANNELS),
            },
        )

    # ---------------------------------------------------------------- churn
    def churn_events(self, t: int) -> pa.Table:
        pop = self.pop
        idx = np.flatnonzero(pop.churn_day == t)
        return _table(
            "churn_events",
            {
                "customer_id": pop.customer_id[idx],
                "churn_date": np.full(len(idx), np.datetime64(day_of(self.settings, t), "D")),
                "reason": _labels(pop.churn_reason[idx], CHURN_REASONS),
            },
        )

    # ---------------------------------------------------------------- invoices and payments
    def _invoice_book(self, u: int) -> dict[str, np.ndarray]:
        """Invoices issued on day ``u`` and the day each will be paid (NEVER if not)."""
        cached = self._invoice_days.get(u)
        if cached is not None:
            return cached
        pop = self.pop
        if u < 0:
            idx = np.empty(0, dtype=np.int64)
        else:
            active = pop.active_on(u)
            idx = active[(u - pop.signup_day[active]) % BILLING_CYCLE_DAYS == 0]
        n = len(idx)
        rng = rng_for(self.settings, STREAM_INVOICES, u)
        plan = pop.plan_on(idx, u)
        payment = pop.payment_on(idx, u)
        noise = rng.normal(0.0, 1.5, n)
        list_amount = np.round(np.maximum(PLAN_FEES_EUR[plan] + pop.addon_eur[idx] + noise, 0.0), 2)
        promo = pop.is_promo[idx] & (u - pop.signup_day[idx] < PROMO_DAYS)
        discount = np.round(np.where(promo, list_amount * PROMO_DISCOUNT_SHARE, 0.0), 2)
        due = u + INVOICE_DUE_DAYS
        p_late = _sigmoid(-2.4 - 1.1 * pop.reliability[idx] + LATE_PAYMENT_METHOD_EFFECT[payment])
        late = rng.random(n) < p_late
        days_late = np.minimum(rng.geometric(0.12, n), MAX_DAYS_LATE)
        early = rng.integers(0, INVOICE_DUE_DAYS + 1, n)
        paid = np.where(late, due + days_late, u + early)
        defaulted = late & (rng.random(n) < 0.03)
        paid = np.where(defaulted | (pop.churn_day[idx] <= paid), NEVER, paid)
        book = {
            "idx": idx,
            "plan": plan,
            "list_amount": list_amount,
            "discount": discount,
            "amount_due": np.round(list_amount - discount, 2),
            "paid_day": paid,
        }
        self._invoice_days[u] = book
        return book

    def _invoice_ids(self, idx: np.ndarray, u: int) -> list[str]:
        stamp = f"{day_of(self.settings, u):%Y%m%d}"
        return [f"INV-{cid}-{stamp}" for cid in self.pop.customer_id[idx]]

    def invoices(self, t: int) -> pa.Table:
        book = self._invoice_book(t)
        n = len(book["idx"])
        day = np.datetime64(day_of(self.settings, t), "D")
        return _table(
            "invoices",
            {
                "invoice_id": self._invoice_ids(book["idx"], t),
                "customer_id": self.pop.customer_id[book["idx"]],
                "invoice_date": np.full(n, day),
                "due_date": np.full(n, day + np.timedelta64(INVOICE_DUE_DAYS, "D")),
                "plan_type": _labels(book["plan"], PLAN_TYPES),
                "list_amount": book["list_amount"],
                "discount_amount": book["discount"],
                "amount_due": book["amount_due"],
                "currency": ["EUR"] * n,
            },
        )

    def payments(self, t: int) -> pa.Table:
        invoice_ids: list[str] = []
        customer_ids = []
        amounts = []
        for u in range(max(t - PAYMENT_LOOKBACK_DAYS, 0), t + 1):
            book = self._invoice_book(u)
            hit = book["paid_day"] == t
            invoice_ids.extend(self._invoice_ids(book["idx"][hit], u))
            customer_ids.append(self.pop.customer_id[book["idx"][hit]])
            amounts.append(book["amount_due"][hit])
        # Issue days that can no longer be paid from here on are dropped from the cache.
        for u in [u for u in self._invoice_days if u < t - PAYMENT_LOOKBACK_DAYS]:
            del self._invoice_days[u]
        n = len(invoice_ids)
        return _table(
            "payments",
            {
                "payment_id": ["PAY-" + i[4:] for i in invoice_ids],
                "invoice_id": invoice_ids,
                "customer_id": np.concatenate(customer_ids) if customer_ids else [],
                "paid_date": np.full(n, np.datetime64(day_of(self.settings, t), "D")),
                "amount_paid": np.concatenate(amounts) if amounts else [],
            },
        )

    def table(self, name: str, t: int) -> pa.Table:
        return getattr(self, name)(t)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
