"""The status report paints against the policy's limits in force, not the seed's."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.settings import load_settings
from churnops.status import render_status

pytestmark = pytest.mark.unit

GREEN, RED = "\033[32m", "\033[31m"


def report(auc_floor: float, drifted_limit: int) -> dict:
    return {
        "model_name": "churn",
        "auc_floor": auc_floor,
        "drifted_features_limit": drifted_limit,
        "champion": {"version": "2", "since": None, "test_auc_at_training": 0.8},
        "latest_cohort": {
            "as_of_date": dt.date(2026, 1, 1),
            "auc": 0.75,
            "rows": 100,
            "churners": 9,
        },
        "latest_estimate": None,
        "drift": {
            "as_of_date": dt.date(2026, 4, 1),
            "model_version": "2",
            "features_total": 40,
            "features_drifted": 4,
            "drifted_features": ["a", "b", "c", "d"],
            "prediction_drifted": False,
        },
        "last_nightly_run": None,
        "triggers": [],
        "follow_ups": [],
        "estimated_vs_realized": [],
        "recent_decisions": [],
        "aliases": {"champion": "2"},
        "audit_log": [],
    }


def test_the_cohort_auc_and_the_drift_are_painted_against_the_limits_in_force() -> None:
    seed = load_settings({}).retraining
    strict = render_status(report(seed.min_cohort_auc, seed.max_drifted_features), color=True)
    assert f"{RED}0.750" in strict and f"{RED}4 of 40 features drifted" in strict
    lenient = render_status(report(0.70, 5), color=True)
    assert f"{GREEN}0.750" in lenient and f"{GREEN}4 of 40 features drifted" in lenient
