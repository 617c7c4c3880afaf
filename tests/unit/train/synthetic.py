"""In-memory training frames shaped like the warehouse's, with a known churn mechanism."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from churnops.contracts import ACQUISITION_CHANNELS, PAYMENT_METHODS, PLAN_TYPES, REGIONS


def synthetic_frame(
    start: dt.date = dt.date(2024, 1, 7),
    weeks: int = 80,
    customers: int = 400,
    seed: int = 3,
    churn_intercept: float = -3.0,
) -> pd.DataFrame:
    """Weekly snapshots; churn rises with cancellation tickets and late payments, falls with logins."""
    rng = np.random.default_rng(seed)
    n = weeks * customers
    as_of = np.repeat([start + dt.timedelta(weeks=w) for w in range(weeks)], customers)
    customer_id = np.tile(np.arange(1, customers + 1, dtype=np.int64), weeks)
    tenure = rng.integers(0, 2_000, n)
    logins = rng.poisson(20, n)
    cancellation = rng.poisson(0.2, n)
    late = rng.poisson(0.4, n)
    revenue = rng.gamma(4.0, 10.0, n)
    logit = churn_intercept + 1.8 * cancellation - 0.15 * (logins - 20) + 0.9 * late
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype("int8")
    return pd.DataFrame(
        {
            "as_of_date": as_of,
            "customer_id": customer_id,
            "tenure_days": tenure.astype("int32"),
            "plan_type": rng.choice(PLAN_TYPES, n),
            "payment_method": rng.choice(PAYMENT_METHODS, n),
            "region": rng.choice(REGIONS, n),
            "acquisition_channel": rng.choice(ACQUISITION_CHANNELS, n),
            "monthly_revenue_eur": revenue,
            "logins_30d": logins.astype("int32"),
            "cancellation_tickets_90d": cancellation.astype("int32"),
            "late_payments_90d": late.astype("int32"),
            "noise": rng.normal(size=n),
            "is_new_customer": (tenure < 90).astype("int32"),
            "churned_within_90d": churned,
        }
    )
