"""Drift verdicts: against scipy on known shifts, against Evidently's own numbers, and the
policy's per-feature methods and missing values."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial import distance

from churnops.monitor.drift import (
    LOW_CARDINALITY_VALUES,
    DriftResult,
    FeatureDrift,
    compute_drift,
)
from churnops.settings import DriftPolicy

pytestmark = pytest.mark.unit

REFERENCE_ROWS = 20_000
CURRENT_ROWS = 50_000
SHARES = {"basic": 0.5, "standard": 0.3, "premium": 0.2}


def _normal(mean: float, rows: int, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.random.default_rng(seed).normal(mean, 1.0, rows)})


def _plans(shares: dict[str, float], rows: int, seed: int) -> pd.DataFrame:
    values = np.random.default_rng(seed).choice(list(shares), rows, p=list(shares.values()))
    return pd.DataFrame({"plan": pd.Categorical(values, categories=list(SHARES))})


def _only(verdicts: list[FeatureDrift], feature: str) -> FeatureDrift:
    [verdict] = [v for v in verdicts if v.feature == feature]
    return verdict


# ---------------------------------------------------------------------------- against scipy
@pytest.mark.parametrize(
    ("shift_sd", "drifted"),
    [(0.0, False), (0.05, False), (0.3, True)],
)
def test_normed_wasserstein_is_scipys_distance_over_the_reference_std(
    shift_sd: float, drifted: bool
) -> None:
    reference = _normal(0.0, REFERENCE_ROWS, seed=1)
    current = _normal(shift_sd, CURRENT_ROWS, seed=2)
    [verdict] = compute_drift(reference, current, ["x"], [], DriftPolicy(), prediction=None)

    expected = stats.wasserstein_distance(reference["x"], current["x"]) / np.std(reference["x"])
    assert verdict.method == "wasserstein"
    assert verdict.statistic == pytest.approx(expected, rel=1e-9)
    # A shift of s standard deviations moves a normal's normed Wasserstein distance by ~s.
    assert verdict.statistic == pytest.approx(shift_sd, abs=0.02)
    assert verdict.p_value is None
    assert verdict.drifted is drifted
    assert verdict.drifted is bool(expected >= 0.1)


@pytest.mark.parametrize(
    ("shift_sd", "drifted"),
    [(0.0, False), (0.05, True), (0.3, True)],
)
def test_ks_override_is_scipys_p_value_and_flags_even_a_small_shift_at_this_size(
    shift_sd: float, drifted: bool
) -> None:
    reference = _normal(0.0, REFERENCE_ROWS, seed=1)
    current = _normal(shift_sd, CURRENT_ROWS, seed=2)
    policy = DriftPolicy(feature_methods=(("x", "ks", 0.01),))
    [verdict] = compute_drift(reference, current, ["x"], [], policy, prediction=None)

    expected = stats.ks_2samp(reference["x"], current["x"])
    assert verdict.method == "ks"
    assert verdict.threshold == 0.01
    assert verdict.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert verdict.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    # 0.05 sd on 20,000 vs 50,000 rows: the p-value test calls it drift, the distance does not.
    assert verdict.drifted is drifted
    assert verdict.drifted is bool(expected.pvalue <= 0.01)


@pytest.mark.parametrize(
    ("shares", "drifted"),
    [
        (SHARES, False),
        ({"basic": 0.45, "standard": 0.3, "premium": 0.25}, False),
        ({"basic": 0.2, "standard": 0.3, "premium": 0.5}, True),
    ],
)
def test_categorical_jensen_shannon_is_scipys_on_the_category_shares(
    shares: dict[str, float], drifted: bool
) -> None:
    reference = _plans(SHARES, REFERENCE_ROWS, seed=3)
    current = _plans(shares, CURRENT_ROWS, seed=4)
    [verdict] = compute_drift(
        reference, current, ["plan"], ["plan"], DriftPolicy(), prediction=None
    )

    ref_shares = reference["plan"].value_counts(normalize=True).reindex(list(SHARES))
    cur_shares = current["plan"].value_counts(normalize=True).reindex(list(SHARES))
    expected = distance.jensenshannon(ref_shares, cur_shares)
    assert verdict.kind == "categorical"
    assert verdict.method == "jensenshannon"
    assert verdict.statistic == pytest.approx(expected, rel=1e-9)
    assert verdict.drifted is drifted
    assert verdict.drifted is bool(expected >= 0.1)


def test_chisquare_override_compares_current_counts_with_the_reference_shares() -> None:
    reference = _plans(SHARES, REFERENCE_ROWS, seed=3)
    current = _plans({"basic": 0.48, "standard": 0.3, "premium": 0.22}, CURRENT_ROWS, seed=4)
    policy = DriftPolicy(feature_methods=(("plan", "chisquare", 0.01),))
    [verdict] = compute_drift(reference, current, ["plan"], ["plan"], policy, prediction=None)

    ref_counts = reference["plan"].value_counts().reindex(list(SHARES)).to_numpy()
    cur_counts = current["plan"].value_counts().reindex(list(SHARES)).to_numpy()
    expected = stats.chisquare(cur_counts, ref_counts * CURRENT_ROWS / REFERENCE_ROWS)
    assert verdict.statistic == pytest.approx(expected.statistic, rel=1e-9)
    assert verdict.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    assert verdict.drifted is True  # a 2-point share move is "significant" at 50,000 rows


def test_binned_jensen_shannon_uses_sturges_bins_over_both_frames() -> None:
    reference = _normal(0.0, REFERENCE_ROWS, seed=1)
    current = _normal(0.3, CURRENT_ROWS, seed=2)
    policy = DriftPolicy(num_method="jensenshannon")
    [verdict] = compute_drift(reference, current, ["x"], [], policy, prediction=None)

    both = np.concatenate([reference["x"], current["x"]])
    edges = np.histogram_bin_edges(both, bins="sturges")
    assert len(edges) - 1 == int(np.ceil(np.log2(both.size) + 1))  # 18 bins
    ref_shares = np.histogram(reference["x"], edges)[0] / REFERENCE_ROWS
    cur_shares = np.histogram(current["x"], edges)[0] / CURRENT_ROWS
    assert verdict.statistic == pytest.approx(
        distance.jensenshannon(ref_shares, cur_shares), rel=1e-9
    )
    assert verdict.drifted is True


# ---------------------------------------------------------------------------- against Evidently
def _mixed(rows: int, seed: int, shift: float) -> pd.DataFrame:
    """Every kind of column the feature table has, with NaN and inf sprinkled in."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "revenue_eur": np.round(rng.gamma(4.0, 10.0 + 10 * shift, rows), 2),
            "logins_30d": rng.poisson(20 - 10 * shift, rows).astype("int32"),
            "late_payments_90d": rng.poisson(0.4 + shift, rows).astype("int32"),  # few values
            "days_since_last_login": rng.integers(0, 15 + int(20 * shift), rows).astype("int32"),
            "is_promo": rng.binomial(1, 0.1 + shift / 5, rows).astype("int32"),
            "constant": np.full(rows, 3.0),
            "plan_type": pd.Categorical(
                rng.choice(
                    ["basic", "standard", "premium"],
                    rows,
                    p=[0.5 - shift / 4, 0.3, 0.2 + shift / 4],
                ),
                categories=["basic", "standard", "premium", "legacy"],
            ),
            "region": rng.choice(["north", "south", "east", "west"], rows),
            "churn_probability": rng.beta(1.0, 12.0 - 4 * shift, rows),
        }
    )
    frame.loc[rng.random(rows) < 0.02, "revenue_eur"] = np.nan
    frame.loc[rng.random(rows) < 0.001, "revenue_eur"] = np.inf
    frame.loc[rng.random(rows) < 0.02, "plan_type"] = np.nan
    return frame


NUMERIC = ["revenue_eur", "logins_30d", "late_payments_90d", "days_since_last_login", "is_promo"]
NUMERIC_ALL = [*NUMERIC, "constant", "churn_probability"]
CATEGORIES = ["plan_type", "region"]


def _evidently_values(snapshot: object) -> dict[str, tuple[float, str, bool]]:
    """column -> (score, method shown, drifted) from a snapshot's dict."""
    data = snapshot.dict()  # type: ignore[attr-defined]
    failed = {
        test["metric_config"]["params"]["column"]: test["status"] == "FAIL"
        for test in data["tests"]
        if test["metric_config"]["params"].get("column")
    }
    return {
        m["config"]["column"]: (m["value"], m["config"]["method"], failed[m["config"]["column"]])
        for m in data["metrics"]
        if m["config"]["type"].endswith(":ValueDrift")
    }


@pytest.mark.parametrize("shift", [0.0, 0.25])
def test_default_policy_matches_evidentlys_default_data_drift_preset(shift: float) -> None:
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    reference = _mixed(3_000, seed=5, shift=0.0)
    current = _mixed(7_000, seed=6, shift=shift)
    definition = DataDefinition(numerical_columns=NUMERIC_ALL, categorical_columns=CATEGORIES)
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    theirs = _evidently_values(snapshot)
    features = [*NUMERIC, "constant", *CATEGORIES]
    ours = compute_drift(reference, current, features, CATEGORIES, DriftPolicy())

    assert {v.feature for v in ours} == set(theirs)
    shown = {
        "wasserstein": "Wasserstein distance (normed)",
        "jensenshannon": "Jensen-Shannon distance",
    }
    for verdict in ours:
        score, method, drifted = theirs[verdict.feature]
        assert verdict.statistic == pytest.approx(score, rel=1e-6, abs=1e-12), verdict.feature
        assert shown[verdict.method] == method, verdict.feature
        assert verdict.drifted is drifted, verdict.feature
    # Evidently's choice for few-valued numerics, followed: flags by Jensen-Shannon.
    assert _only(ours, "is_promo").method == "jensenshannon"
    assert _only(ours, "constant").method == "jensenshannon"
    assert _only(ours, "logins_30d").method == "wasserstein"
    assert _only(ours, "churn_probability").kind == "prediction"
    if shift:
        assert {v.feature for v in ours if v.drifted} >= {"revenue_eur", "logins_30d"}
    else:
        assert not any(v.drifted for v in ours)


@pytest.mark.parametrize(
    ("num_method", "cat_method"),
    [("ks", "chisquare"), ("psi", "psi"), ("jensenshannon", "jensenshannon")],
)
def test_every_method_matches_evidentlys_stattest(num_method: str, cat_method: str) -> None:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    reference = _mixed(3_000, seed=5, shift=0.0)
    current = _mixed(7_000, seed=6, shift=0.1)
    policy = DriftPolicy(num_method=num_method, cat_method=cat_method)
    ours = compute_drift(
        reference, current, [*NUMERIC, *CATEGORIES], CATEGORIES, policy, prediction=None
    )

    for verdict in ours:
        column_type = (
            ColumnType.Categorical if verdict.feature in CATEGORIES else ColumnType.Numerical
        )
        stattest = get_registered_stattest(verdict.method, column_type)
        clean = [
            frame[verdict.feature].replace([-np.inf, np.inf], np.nan).dropna()
            for frame in (reference, current)
        ]
        theirs = stattest(clean[0], clean[1], column_type, verdict.threshold)
        assert verdict.score == pytest.approx(theirs.drift_score, rel=1e-6, abs=1e-300)
        assert verdict.drifted is bool(theirs.drifted), verdict.feature
    assert {v.method for v in ours} == {num_method, cat_method}


def test_psi_fills_empty_categories_as_evidently_does() -> None:
    from evidently.legacy.calculations.stattests import psi_stat_test
    from evidently.legacy.core import ColumnType

    # Shares under 0.0001 on both sides, and a category each side lacks: both fill rules.
    reference = pd.DataFrame({"plan": ["basic"] * 19_999 + ["legacy"]})
    current = pd.DataFrame({"plan": ["basic"] * 50_000 + ["premium"] * 3})
    policy = DriftPolicy(cat_method="psi")
    [verdict] = compute_drift(reference, current, ["plan"], ["plan"], policy, prediction=None)

    theirs = psi_stat_test(reference["plan"], current["plan"], ColumnType.Categorical, 0.1)
    assert verdict.statistic == pytest.approx(theirs.drift_score, rel=1e-9)
    # By hand: legacy 1/20,000 against a fill of a millionth of current's smallest share.
    ref = np.array([19_999, 1, 0]) / 20_000
    cur = np.array([50_000, 0, 3]) / 50_003
    ref[2], cur[1] = ref[1] / 10**6, cur[2] / 10**6
    assert verdict.statistic == pytest.approx(np.sum((ref - cur) * np.log(ref / cur)), rel=1e-9)
    assert verdict.drifted is bool(theirs.drifted)


# ---------------------------------------------------------------------------- policy
def test_per_feature_overrides_choose_method_and_threshold() -> None:
    reference = _mixed(3_000, seed=5, shift=0.0)
    current = _mixed(7_000, seed=6, shift=0.25)
    policy = DriftPolicy(
        feature_methods=(
            ("revenue_eur", "psi", 0.5),
            ("is_promo", "wasserstein", 0.2),  # named explicitly: no switch to Jensen-Shannon
            ("region", "chisquare", 0.001),
        )
    )
    ours = compute_drift(
        reference, current, [*NUMERIC, *CATEGORIES], CATEGORIES, policy, prediction=None
    )

    revenue = _only(ours, "revenue_eur")
    assert (revenue.method, revenue.threshold) == ("psi", 0.5)
    assert revenue.drifted is bool(revenue.statistic >= 0.5)
    promo = _only(ours, "is_promo")
    assert (promo.method, promo.threshold) == ("wasserstein", 0.2)
    flags = [frame["is_promo"] for frame in (reference, current)]
    assert promo.statistic == pytest.approx(
        stats.wasserstein_distance(*flags) / np.std(flags[0]), rel=1e-9
    )
    region = _only(ours, "region")
    assert (region.method, region.threshold) == ("chisquare", 0.001)
    assert region.p_value is not None and region.drifted is (region.p_value < 0.001)
    # Everything else follows the defaults.
    assert (_only(ours, "logins_30d").method, _only(ours, "plan_type").method) == (
        "wasserstein",
        "jensenshannon",
    )


def test_low_cardinality_switch_counts_values_of_both_frames() -> None:
    values = list(range(LOW_CARDINALITY_VALUES))
    reference = pd.DataFrame({"n": np.tile(values, 400)})
    same = compute_drift(reference, reference, ["n"], [], DriftPolicy(), prediction=None)
    assert same[0].method == "jensenshannon"
    assert same[0].statistic == pytest.approx(0.0, abs=1e-12)
    # One more value appears tonight: six distinct values, so Wasserstein again.
    current = pd.DataFrame({"n": np.tile([*values, LOW_CARDINALITY_VALUES], 400)})
    [verdict] = compute_drift(reference, current, ["n"], [], DriftPolicy(), prediction=None)
    assert verdict.method == "wasserstein"
    assert verdict.statistic == pytest.approx(
        stats.wasserstein_distance(reference["n"], current["n"]) / np.std(reference["n"]),
        rel=1e-9,
    )


def test_a_method_that_cannot_compare_the_column_is_refused() -> None:
    frame = _plans(SHARES, 100, seed=1).assign(x=np.arange(100.0))
    with pytest.raises(ValueError, match="ks compares numbers"):
        compute_drift(
            frame, frame, ["plan"], ["plan"], DriftPolicy(cat_method="ks"), prediction=None
        )
    with pytest.raises(ValueError, match="chisquare compares categories"):
        compute_drift(frame, frame, ["x"], [], DriftPolicy(num_method="chisquare"), prediction=None)
    with pytest.raises(KeyError, match="churn_probability"):
        compute_drift(frame, frame, ["x"], [], DriftPolicy())


# ---------------------------------------------------------------------------- missing values
def test_missing_values_are_dropped_per_column() -> None:
    reference = _mixed(3_000, seed=5, shift=0.0)
    current = _mixed(7_000, seed=6, shift=0.25)
    assert reference["revenue_eur"].isna().sum() > 0 and current["plan_type"].isna().sum() > 0
    ours = compute_drift(
        reference, current, [*NUMERIC, *CATEGORIES], CATEGORIES, DriftPolicy(), prediction=None
    )

    for verdict in ours:
        clean = [
            frame[[verdict.feature]].replace([-np.inf, np.inf], np.nan).dropna()
            for frame in (reference, current)
        ]
        [alone] = compute_drift(
            clean[0],
            clean[1],
            [verdict.feature],
            [verdict.feature] if verdict.feature in CATEGORIES else [],
            DriftPolicy(),
            prediction=None,
        )
        assert verdict == alone
    # A row's NaN in one column does not drop its other columns: all 3,000 logins count.
    revenue = reference["revenue_eur"]
    assert np.isfinite(revenue).sum() < len(reference)
    logins = _only(ours, "logins_30d")
    full = stats.wasserstein_distance(reference["logins_30d"], current["logins_30d"])
    assert logins.statistic == pytest.approx(full / np.std(reference["logins_30d"]), rel=1e-9)


def test_a_column_without_values_is_an_error() -> None:
    reference = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    current = pd.DataFrame({"x": [np.nan, np.inf, np.nan]})
    with pytest.raises(ValueError, match="'x' has no values in the current frame"):
        compute_drift(reference, current, ["x"], [], DriftPolicy(), prediction=None)


# ---------------------------------------------------------------------------- the result
def test_result_counts_features_not_the_prediction() -> None:
    def verdict(name: str, drifted: bool, kind: str = "numerical") -> FeatureDrift:
        return FeatureDrift(name, kind, "wasserstein", 0.2 if drifted else 0.0, None, 0.1, drifted)

    features = [
        verdict("a", True),
        verdict("b", True),
        verdict("c", False),
        verdict("d", False),
        verdict("churn_probability", True, kind="prediction"),
    ]
    result = DriftResult(dt.date(2025, 6, 1), "3", features, 10, 20, None, None, 1.0, 0.5)
    assert result.drifted_features == ["a", "b"]
    assert result.share_drifted == 0.5
    assert result.prediction_drifted is True
    assert result.dataset_drifted is True  # 2 of 4 reaches the 0.5 share
    fewer = DriftResult(dt.date(2025, 6, 1), "3", features[1:], 10, 20, None, None, 1.0, 0.5)
    assert fewer.share_drifted == pytest.approx(1 / 3)
    assert fewer.dataset_drifted is False
