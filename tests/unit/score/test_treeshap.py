"""The fast TreeSHAP of the reason codes (``churnops.score.treeshap``) against LightGBM's
own ``pred_contrib``: the project's churn model, random boosters with every split kind,
rows on the thresholds, thread counts, and the guard's fallback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from churnops.score import treeshap
from churnops.settings import TrainParams
from churnops.train import TrainedModel, prepare_features, time_split, train_model
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

TOLERANCE = 1e-9
FEATURES = 12
CATEGORICAL = [5, 6]
# Category codes a night may hold: unseen, negative, fractional, out of int range, NaN.
ODD_CODES = [-1.0, -0.5, 0.7, 3.999, 12.0, 40.0, 100.0, 1e10, -1e10, np.inf, np.nan]


def assert_matches_lightgbm(booster: lgb.Booster, matrix: np.ndarray, threads: int = 1) -> float:
    fast = treeshap.contributions(booster, matrix, threads)
    expected = np.asarray(booster.predict(matrix, pred_contrib=True, num_threads=threads))[:, :-1]
    assert fast.shape == expected.shape
    difference = float(np.max(np.abs(fast - expected), initial=0.0))
    assert difference <= TOLERANCE, f"differs from pred_contrib by {difference:.3g}"
    return difference


def random_rows(
    rng: np.random.Generator, rows: int, categorical: list[int], nan_share: float = 0.15
) -> tuple[np.ndarray, np.ndarray]:
    """Numerics with NaN and many exact zeros, a rounded feature (ties), category codes."""
    x = rng.normal(size=(rows, FEATURES))
    x[:, 1] = np.round(x[:, 1], 1)
    x[:, 2:4][rng.random((rows, 2)) < 0.3] = 0.0
    x[rng.random((rows, FEATURES)) < nan_share] = np.nan
    for column in categorical:
        x[:, column] = rng.integers(0, 12, rows).astype(float)
        x[rng.random(rows) < nan_share, column] = np.nan
    signal = np.nan_to_num(x[:, 0]) + np.nan_to_num(x[:, 1]) * np.nan_to_num(x[:, 2])
    if categorical:
        signal += np.nan_to_num(x[:, categorical[0]]) % 3 == 1
    labels = (signal + rng.normal(size=rows) > 0.5).astype(float)
    return x, labels


def random_booster(seed: int, **overrides: object) -> tuple[lgb.Booster, np.ndarray]:
    """A small booster with drawn parameters, and rows to explain (odd codes included)."""
    rng = np.random.default_rng(seed)
    categorical = CATEGORICAL if seed % 3 else []
    nan_share = 0.0 if seed % 4 < 2 else 0.15  # missing types None and Zero need no NaN
    x, labels = random_rows(rng, 1500, categorical, nan_share)
    params: dict[str, object] = {
        "objective": "regression" if seed % 5 == 0 else "binary",
        "num_leaves": int(rng.integers(2, 64)),
        "max_depth": int(rng.integers(1, 11)),
        "min_data_in_leaf": int(rng.integers(1, 30)),
        "learning_rate": 0.3,
        "max_bin": int(rng.choice([15, 63, 255])),
        "zero_as_missing": seed % 4 == 0,
        "max_cat_to_onehot": int(rng.choice([4, 32])),
        "min_data_per_group": 5,
        "cat_smooth": 1.0,
        "seed": seed,
        "num_threads": 1,
        "verbosity": -1,
        **overrides,
    }
    dataset = lgb.Dataset(x, labels, categorical_feature=categorical or "auto")
    booster = lgb.train(params, dataset, num_boost_round=int(rng.integers(1, 25)))
    rows, _ = random_rows(rng, 300, categorical)
    for column in categorical:
        rows[: len(ODD_CODES), column] = ODD_CODES
    return booster, rows


def tree_depth(booster: lgb.Booster) -> int:
    def depth(node: dict) -> int:  # type: ignore[type-arg]
        if "leaf_index" in node or "leaf_value" in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    return max(depth(tree["tree_structure"]) for tree in booster.dump_model()["tree_info"])


# ------------------------------------------------------------------------- agreement


@pytest.fixture(scope="module")
def churn_model() -> tuple[TrainedModel, np.ndarray]:
    """The project's churn model, trained by its own code on a small synthetic frame, and
    test rows with unknown categories and missing numerics."""
    params = TrainParams(min_train_positives=50, min_eval_positives=20, max_rounds=60)
    split = time_split(synthetic_frame(weeks=40, customers=300), params)
    model = train_model(split)
    test = split.test.copy()
    rng = np.random.default_rng(0)
    test.loc[rng.random(len(test)) < 0.1, "plan_type"] = "gold"  # unseen: NaN code
    test.loc[rng.random(len(test)) < 0.1, "logins_30d"] = np.nan
    test.loc[rng.random(len(test)) < 0.1, "monthly_revenue_eur"] = 0.0
    return model, prepare_features(test, model.features).to_numpy()


def test_the_churn_model_matches_lightgbm(churn_model: tuple[TrainedModel, np.ndarray]) -> None:
    model, rows = churn_model
    forest = treeshap.forest_of(model.booster)
    assert forest.categorical.any(), "the churn model should split on a categorical"
    assert np.isnan(rows).any()
    assert_matches_lightgbm(model.booster, rows, threads=2)


def test_random_boosters_match_lightgbm() -> None:
    seen = {"stump": 0, "repeated": 0, "categorical nan": 0, "categorical none": 0}
    seen |= {"sibling leaves": 0, "siblings under a repeated split": 0}
    seen |= {f"missing {kind} default {side}": 0 for kind in (1, 2) for side in (0, 1)}
    seen["missing 0"] = 0
    deepest, distinct, widest = 0, 0, 0
    configurations = [{}] * 14 + [
        {"num_leaves": 63, "max_depth": 10, "min_data_in_leaf": 2},
        {"num_leaves": 2, "max_depth": 1},
    ]
    for seed, overrides in enumerate(configurations):
        booster, rows = random_booster(seed, **overrides)
        assert_matches_lightgbm(booster, rows)
        forest = treeshap.forest_of(booster)
        numerical = forest.categorical == 0
        seen["stump"] += int((np.diff(forest.node_start) == 1).sum())
        seen["repeated"] += int((forest.first == 0).sum())
        pairs = forest.unit_slot_a != forest.unit_slot_b
        seen["sibling leaves"] += int(pairs.sum())
        seen["siblings under a repeated split"] += int((pairs & (forest.unit_hi == 1)).sum())
        seen["categorical nan"] += int(((forest.categorical == 1) & (forest.missing == 2)).sum())
        seen["categorical none"] += int(((forest.categorical == 1) & (forest.missing == 0)).sum())
        seen["missing 0"] += int((numerical & (forest.missing == 0)).sum())
        for kind in (1, 2):
            for side in (0, 1):
                chosen = numerical & (forest.missing == kind) & (forest.default_left == side)
                seen[f"missing {kind} default {side}"] += int(chosen.sum())
        deepest = max(deepest, tree_depth(booster))
        distinct = max(distinct, int(np.diff(forest.path_start).max(initial=0)))
        widest = max(widest, int(np.diff(forest.leaf_start).max()))
    # Every kind of split and path the claim is about was exercised.
    assert all(seen.values()), str(seen)
    assert deepest == 10 and distinct >= 9 and widest == 63


def test_a_constant_tree_contributes_nothing() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 4))
    dataset = lgb.Dataset(x, x[:, 0] + rng.normal(size=500), free_raw_data=False)
    params = {"objective": "regression", "verbosity": -1, "num_threads": 1}
    constant = lgb.train({**params, "min_gain_to_split": 1e12}, dataset, num_boost_round=1)
    booster = lgb.train(
        {**params, "num_leaves": 4}, dataset, num_boost_round=3, init_model=constant
    )
    assert [t["num_leaves"] for t in booster.dump_model()["tree_info"]] == [1, 4, 4, 4]
    assert_matches_lightgbm(booster, x)
    assert not treeshap.contributions(constant, x, 1).any()


def test_rows_exactly_on_the_thresholds() -> None:
    booster, rows = random_booster(7, num_leaves=31, max_depth=8)
    forest = treeshap.forest_of(booster)
    numerical = forest.categorical == 0
    rng = np.random.default_rng(7)
    on = rows.copy()
    for row in on:
        # Each row: some features exactly on a threshold of theirs, some one ulp away.
        for node in rng.choice(np.flatnonzero(numerical), size=6):
            threshold = forest.threshold[node]
            row[forest.feature[node]] = rng.choice(
                [threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)]
            )
    hits = np.isin(on, forest.threshold[numerical]).sum()
    assert hits > len(on), "rows should sit on thresholds"
    assert_matches_lightgbm(booster, on)
    # LightGBM's near-zero thresholds (+-1e-35) and values around them.
    tiny = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-35, -1e-35, 1.0000000180025095e-35, 2e-35])
    near_zero = np.repeat(rows[:1], len(tiny) * FEATURES, axis=0)
    for index, value in enumerate(np.tile(tiny, FEATURES)):
        near_zero[index, index // len(tiny)] = value
    assert_matches_lightgbm(booster, near_zero)


def test_a_later_best_iteration_is_honoured() -> None:
    booster, rows = random_booster(11, num_leaves=15)
    trees = treeshap.forest_of(booster).trees
    assert trees > 3
    booster.best_iteration = 3  # Booster.predict then uses the first 3 trees
    assert treeshap.forest_of(booster).trees == 3
    assert_matches_lightgbm(booster, rows)


def test_one_and_two_threads_give_identical_values() -> None:
    import numba

    booster, _ = random_booster(13, num_leaves=31, max_depth=8)
    rows, _ = random_rows(np.random.default_rng(13), 5_000, CATEGORICAL)
    before = numba.get_num_threads()
    one = treeshap.contributions(booster, rows, 1)
    two = treeshap.contributions(booster, rows, 2)
    assert np.array_equal(one, two)
    assert numba.get_num_threads() == before  # restored after each call
    assert_matches_lightgbm(booster, rows, threads=2)


def test_the_input_is_checked() -> None:
    booster, rows = random_booster(2)
    assert treeshap.contributions(booster, rows[:0], 1).shape == (0, FEATURES)
    with pytest.raises(ValueError, match="expects 12 features"):
        treeshap.contributions(booster, rows[:, :5], 1)
    # A Fortran-ordered matrix gives the values of its C-ordered copy.
    values = treeshap.contributions(booster, rows, 1)
    assert np.array_equal(treeshap.contributions(booster, np.asfortranarray(rows), 1), values)


# ----------------------------------------------------------------------------- guard


def test_the_guard_keeps_the_fast_values_when_they_match() -> None:
    booster, rows = random_booster(3)
    values, method = treeshap.verified_contributions(booster, rows, 2)
    assert method == treeshap.FAST
    assert np.array_equal(values, treeshap.contributions(booster, rows, 2))


def test_the_guard_falls_back_when_the_tables_are_wrong(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    booster, rows = random_booster(4, num_leaves=15)
    good = treeshap.forest_of(booster)
    corrupt = replace(good, table=good.table.copy())
    corrupt.table[corrupt.table != 0] *= 1.001
    monkeypatch.setattr(treeshap, "forest_of", lambda _: corrupt)
    with caplog.at_level(logging.WARNING, logger="churnops.score.treeshap"):
        values, method = treeshap.verified_contributions(booster, rows, 1)
    assert method.startswith("lightgbm: fast TreeSHAP differed from LightGBM by ")
    assert method.endswith(f"on {treeshap.VERIFY_ROWS} rows")
    assert "differed" in caplog.text
    expected = booster.predict(rows, pred_contrib=True)[:, :-1]
    assert np.array_equal(values, expected)


def test_the_guard_checks_every_row_for_non_finite_values(monkeypatch: pytest.MonkeyPatch) -> None:
    booster, _ = random_booster(10)
    rows, _ = random_rows(np.random.default_rng(10), 1_000, CATEGORICAL)
    values = treeshap.contributions(booster, rows, 1)
    sampled = np.linspace(0, len(rows) - 1, treeshap.VERIFY_ROWS).astype(int)
    assert 1 not in sampled  # a row the sample does not compare
    values[1, 0] = np.nan
    monkeypatch.setattr(treeshap, "contributions", lambda *_: values)
    checked, method = treeshap.verified_contributions(booster, rows, 1)
    assert method == "lightgbm: fast TreeSHAP gave non-finite values on 1 rows"
    assert np.array_equal(checked, booster.predict(rows, pred_contrib=True)[:, :-1])


def small_booster(**params: object) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(400, 4))
    dataset = lgb.Dataset(x, np.floor(x[:, 0] + 2).clip(0, 3))
    booster = lgb.train({"objective": "regression", "verbosity": -1, **params}, dataset, 5)
    return booster, x


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"boosting": "rf", "bagging_fraction": 0.5, "bagging_freq": 1}, "random forest"),
        ({"objective": "multiclass", "num_class": 4}, "multiclass"),
        ({"linear_tree": True}, "linear tree"),
    ],
)
def test_unsupported_models_are_refused(params: dict[str, object], why: str) -> None:
    booster, x = small_booster(**params)
    with pytest.raises(treeshap.UnsupportedModel, match=why):
        treeshap.contributions(booster, x, 1)


def test_the_guard_falls_back_on_an_unsupported_model() -> None:
    booster, x = small_booster(boosting="rf", bagging_fraction=0.5, bagging_freq=1)
    values, method = treeshap.verified_contributions(booster, x, 1)
    assert method == (
        "lightgbm: fast TreeSHAP unavailable: "
        "random forest models (average_output) are not supported"
    )
    assert np.array_equal(values, booster.predict(x, pred_contrib=True)[:, :-1])


def test_the_guard_falls_back_when_numba_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    booster, rows = random_booster(8)

    def broken() -> None:
        raise ImportError("numba is not installed")

    monkeypatch.setattr(treeshap, "_FORESTS", type(treeshap._FORESTS)())
    monkeypatch.setattr(treeshap, "_kernels", broken)
    values, method = treeshap.verified_contributions(booster, rows, 1)
    assert method == "lightgbm: fast TreeSHAP unavailable: numba is not installed"
    assert np.array_equal(values, booster.predict(rows, pred_contrib=True)[:, :-1])


# ------------------------------------------------------------------------ set-up


def test_the_tables_are_built_once_per_booster() -> None:
    booster, _ = random_booster(9)
    forest = treeshap.forest_of(booster)
    assert treeshap.forest_of(booster) is forest
    other, _ = random_booster(9)
    assert treeshap.forest_of(other) is not forest


def test_numba_loads_only_when_reasons_are_computed() -> None:
    code = (
        "import sys, churnops.score, churnops.score.treeshap, churnops.score.nightly; "
        "assert 'numba' not in sys.modules, 'numba was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=os.environ.copy())


def test_the_jit_cache_goes_to_the_state_dir_or_a_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "state"))
    assert treeshap._jit_cache_dir() == tmp_path / "state" / "cache" / "numba"
    assert (tmp_path / "state" / "cache" / "numba").is_dir()
    (tmp_path / "file").write_text("not a folder")
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "file"))
    fallback = treeshap._jit_cache_dir()
    assert fallback is not None and fallback.name.startswith("churnops-numba-")
