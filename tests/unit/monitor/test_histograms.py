"""The reference and current histograms the drift step stores for the portal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnops.monitor.drift import (
    CATEGORICAL,
    HISTOGRAM_BINS,
    NUMERICAL,
    FeatureDrift,
    feature_histograms,
)

pytestmark = pytest.mark.unit


def _verdict(feature: str, kind: str) -> FeatureDrift:
    return FeatureDrift(feature, kind, "wasserstein", 0.0, None, 0.1, False)


def test_wide_numbers_share_equal_bins_and_each_side_sums_to_one() -> None:
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 5_000)})
    current = pd.DataFrame({"x": np.append(rng.normal(1, 1, 4_999), np.nan)})
    [h] = feature_histograms(reference, current, [_verdict("x", NUMERICAL)])
    assert len(h.bins) == len(h.reference_share) == len(h.current_share) == HISTOGRAM_BINS
    assert sum(h.reference_share) == pytest.approx(1.0)
    assert sum(h.current_share) == pytest.approx(1.0)  # the missing value is left out
    # The night moved right: more of it in the upper half of the bins than the reference.
    half = HISTOGRAM_BINS // 2
    assert sum(h.current_share[half:]) > sum(h.reference_share[half:]) + 0.2
    assert h.bins[0].startswith("[")


def test_few_values_are_their_own_bins_and_categories_are_shares() -> None:
    reference = pd.DataFrame(
        {"n": [0, 1, 1, 2] * 10, "plan": pd.Categorical(["a", "b", "b", "c"] * 10)}
    )
    current = pd.DataFrame({"n": [1, 3] * 20, "plan": pd.Categorical(["b", "d"] * 20)})
    counts, plans = feature_histograms(
        reference, current, [_verdict("n", NUMERICAL), _verdict("plan", CATEGORICAL)]
    )
    assert counts.bins == ("0", "1", "2", "3")
    assert counts.reference_share == (0.25, 0.5, 0.25, 0.0)
    assert counts.current_share == (0.0, 0.5, 0.0, 0.5)
    assert plans.bins == ("b", "d", "a", "c")  # most common first
    assert dict(zip(plans.bins, plans.current_share, strict=True)) == {
        "b": 0.5,
        "d": 0.5,
        "a": 0.0,
        "c": 0.0,
    }
