"""Who is contacted tonight: a threshold rule per customer, the capacity rule's quotas."""

from __future__ import annotations

import numpy as np
import pytest

from churnops.score.policy import contact_quotas, threshold_contacts

pytestmark = pytest.mark.unit


def test_a_threshold_rule_flags_scores_at_or_above_the_serving_models_threshold() -> None:
    probabilities = np.array([0.10, 0.30, 0.30, 0.50, 0.05])
    # Customers 1-2 served by a model at 0.3, 3 by one at 0.6, 4-5 by a capacity model.
    thresholds = np.array([0.3, 0.3, 0.6, np.nan, np.nan])
    flags = threshold_contacts(probabilities, thresholds)
    assert flags.to_pylist() == [False, True, False, None, None]


def test_a_model_serving_the_whole_night_contacts_its_capacity() -> None:
    assert contact_quotas({"champion": 500}, canary_rows=0, night_rows=20_000) == {"champion": 500}
    assert contact_quotas({}, canary_rows=2_000, night_rows=20_000) == {}


def test_with_a_canary_the_challenger_contacts_its_share_and_both_make_n() -> None:
    quotas = contact_quotas({"champion": 500, "challenger": 500}, 2_003, 20_000)
    assert quotas == {"champion": 450, "challenger": 50}
    assert sum(quotas.values()) == 500
    # Each model its own N: the challenger's share of its own, the champion the rest of its.
    assert contact_quotas({"champion": 500, "challenger": 100}, 5_000, 20_000) == {
        "champion": 375,
        "challenger": 25,
    }
    # Only the challenger by capacity: its share alone (the champion flags by threshold).
    assert contact_quotas({"challenger": 500}, 5_000, 20_000) == {"challenger": 125}


def test_a_capacity_larger_than_the_night_is_a_quota_that_everyone_meets() -> None:
    assert contact_quotas({"champion": 50_000}, 0, 20_000) == {"champion": 50_000}
