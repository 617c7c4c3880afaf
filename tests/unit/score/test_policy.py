"""The serving policies of nightly scoring: risk bands, the canary group, reason codes,
and the fast path's input matrix against the model's own input preparation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from churnops.score.fastpath import feature_matrix
from churnops.score.policy import assign_risk_bands, canary_mask, canary_position, top_reasons
from churnops.settings import RISK_BANDS_DEFAULT, ScoringPolicy, SettingsError
from churnops.train.model import prepare_features


@pytest.mark.parametrize(
    ("probability", "band"),
    [
        (0.0, "low"),
        (0.0999999, "low"),
        (0.10, "medium"),
        (0.2999999, "medium"),
        (0.30, "high"),
        (1.0, "high"),
    ],
)
def test_a_probability_gets_the_band_whose_floor_it_reaches(probability: float, band: str) -> None:
    assert assign_risk_bands(np.array([probability]), RISK_BANDS_DEFAULT).tolist() == [band]


def test_bands_follow_the_policy_not_hard_coded_floors() -> None:
    bands = (("urgent", 0.5), ("watch", 0.05), ("fine", 0.0))
    got = assign_risk_bands(np.array([0.01, 0.05, 0.49, 0.5, 0.9]), bands)
    assert got.tolist() == ["fine", "watch", "watch", "urgent", "urgent"]


@pytest.mark.parametrize(
    "bands",
    [
        (("high", 0.3), ("low", 0.1)),  # lowest floor not 0: some scores had no band
        (("low", 0.0), ("high", 0.3)),  # not highest first
        (("a", 0.3), ("b", 0.3), ("c", 0.0)),  # duplicate floors
    ],
)
def test_a_policy_that_leaves_scores_without_a_band_is_refused(bands) -> None:
    with pytest.raises(SettingsError):
        ScoringPolicy(risk_bands=bands, reason_band=bands[0][0])


def test_the_reason_band_must_exist() -> None:
    with pytest.raises(SettingsError, match="reason band"):
        ScoringPolicy(reason_band="critical")


@pytest.mark.parametrize("share", [0.0, 0.05, 0.10, 0.5, 1.0])
def test_the_canary_share_is_within_one_point_of_the_policy_at_20k(share: float) -> None:
    ids = np.arange(1, 20_001)
    chosen = canary_mask(ids, share, "churnops-canary")
    assert abs(chosen.mean() - share) <= 0.01


def test_the_canary_is_the_same_customers_whatever_else_is_in_the_night() -> None:
    first_night = np.arange(1, 20_001)
    # The next night: some customers left, new ones arrived, the order changed.
    next_night = np.concatenate([np.arange(20_500, 19_000, -1), np.arange(1, 18_000)])
    a = dict(zip(first_night, canary_mask(first_night, 0.1, "s"), strict=True))
    b = dict(zip(next_night, canary_mask(next_night, 0.1, "s"), strict=True))
    both = set(a) & set(b)
    assert len(both) > 15_000
    assert all(a[c] == b[c] for c in both)


def test_canary_positions_are_pinned_so_no_library_upgrade_moves_customers() -> None:
    # Integer arithmetic only; these values must never change, or a canary group
    # would silently reshuffle on an upgrade.
    positions = canary_position(np.array([1, 2, 123_456]), "churnops-canary")
    assert positions.tolist() == [0.5633618423407504, 0.3047302799590189, 0.1107828881493963]


def test_a_larger_share_keeps_the_smaller_shares_customers() -> None:
    ids = np.arange(1, 20_001)
    small = canary_mask(ids, 0.05, "s")
    large = canary_mask(ids, 0.20, "s")
    assert np.all(large[small])


def test_another_salt_draws_another_group() -> None:
    ids = np.arange(1, 20_001)
    overlap = (canary_mask(ids, 0.1, "a") & canary_mask(ids, 0.1, "b")).mean()
    assert overlap < 0.02  # independent draws overlap about 1 %


def test_reasons_are_the_strongest_upward_contributions_in_order() -> None:
    features = ["tenure", "tickets", "logins", "bill"]
    contributions = np.array(
        [
            [0.1, 0.9, -2.0, 0.5],  # tickets, bill, tenure
            [-0.1, -0.2, 0.3, -0.4],  # only logins pushes up
            [-1.0, -1.0, -1.0, -1.0],  # nothing pushes up
        ]
    )
    assert top_reasons(contributions, features, 3) == [
        ["tickets", "bill", "tenure"],
        ["logins"],
        [],
    ]
    assert top_reasons(contributions, features, 1) == [["tickets"], ["logins"], []]
    assert top_reasons(contributions, features, 0) == [[], [], []]


def test_the_fast_path_matrix_is_exactly_the_models_own_input() -> None:
    frame = pd.DataFrame(
        {
            "tenure_days": [10, 400, 3],
            "plan_type": ["premium", "basic", "unknown-plan"],
            "monthly_bill_eur": [49.5, 19.0, None],
            "acquisition_channel": ["campaign", "web", "partner"],
        }
    )
    features = ["plan_type", "tenure_days", "monthly_bill_eur", "acquisition_channel"]
    expected = prepare_features(frame, features).to_numpy()
    got = feature_matrix(pa.Table.from_pandas(frame), features)
    np.testing.assert_array_equal(got, expected)  # NaN == NaN here
    assert np.isnan(got[2, 0])  # an unknown category is missing, not a code


def test_the_fast_path_names_missing_features() -> None:
    with pytest.raises(KeyError, match="tenure_days"):
        feature_matrix(pa.table({"plan_type": ["basic"]}), ["plan_type", "tenure_days"])
