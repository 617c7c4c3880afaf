"""Compiled trees (treelite + tl2cgen, a real gcc build) score exactly as LightGBM does,
are built once per model, and are never used when they disagree or cannot be built."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from churnops.registry.champion import LoadedModel
from churnops.score.engine import (
    CompilationUnavailable,
    compiled_engine,
    engine_for,
    find_compiler,
    library_path,
    native_engine,
    verified,
)
from churnops.score.fastpath import feature_matrix
from churnops.settings import ScoringPolicy, TrainParams
from churnops.train import time_split
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.integration

PARAMS = TrainParams(min_train_positives=50, min_eval_positives=20)
TREES = 120
THREADS = 2


def _loaded(version: str, seed: int) -> LoadedModel:
    """A model of exactly 120 trees (no early stopping): many splits on every feature,
    categorical splits and missing-value branches, as the nightly scores them."""
    import lightgbm as lgb

    from churnops.train.frame import LABEL_COLUMN
    from churnops.train.model import (
        ChurnModel,
        categorical_features,
        lightgbm_params,
        prepare_features,
    )

    split = time_split(synthetic_frame(weeks=60, seed=seed), PARAMS)
    train = lgb.Dataset(
        prepare_features(split.train, split.features),
        label=split.train[LABEL_COLUMN].to_numpy(),
        categorical_feature=categorical_features(split.features),
    )
    booster = lgb.train(lightgbm_params(PARAMS, 10.0), train, num_boost_round=TREES)
    return LoadedModel(
        "churn", version, None, ChurnModel(booster, split.features, 1.0, 0.0), None, {}
    )


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    return _loaded("1", seed=3)


@pytest.fixture(scope="module")
def other_model() -> LoadedModel:
    return _loaded("2", seed=11)


@pytest.fixture(scope="module")
def night(model: LoadedModel) -> np.ndarray:
    """A night's matrix with what real nights hold: missing values and unknown categories."""
    frame = synthetic_frame(weeks=2, customers=3000, seed=5)
    frame.loc[frame.index[::7], "monthly_revenue_eur"] = None
    frame.loc[frame.index[::11], "plan_type"] = "a-plan-launched-after-training"
    frame.loc[frame.index[::13], "tenure_days"] = None
    matrix = feature_matrix(pa.Table.from_pandas(frame), model.features)
    assert np.isnan(matrix).any(axis=0).sum() >= 3
    return matrix


@pytest.fixture
def compiler() -> str:
    found = find_compiler()
    assert found, "the test machine has gcc (the Debian image and the Dockerfile install it)"
    return found


def test_compiled_trees_give_lightgbms_raw_scores_exactly(
    model: LoadedModel, night: np.ndarray, compiler: str, tmp_path: Path
) -> None:
    engine = compiled_engine(model, tmp_path, compiler, THREADS)
    assert engine.name == "compiled" and engine.compile_seconds > 0
    expected = native_engine(model, THREADS, "").raw_scores(night)
    got = engine.raw_scores(night)
    assert got.shape == expected.shape == (len(night),)
    assert float(np.max(np.abs(got - expected))) <= 1e-9
    assert model.model.booster.num_trees() == TREES


def test_a_version_is_compiled_once_and_named_by_its_content(
    model: LoadedModel, other_model: LoadedModel, compiler: str, tmp_path: Path
) -> None:
    first = compiled_engine(model, tmp_path, compiler, THREADS).compile_seconds
    library = library_path(model, tmp_path)
    built_at = library.stat().st_mtime_ns
    engine = compiled_engine(model, tmp_path, compiler, THREADS)
    assert first > 0 and engine.compile_seconds == 0.0
    assert library.stat().st_mtime_ns == built_at
    assert "cached library" in engine.detail
    assert library.name.startswith("churn-v1-") and library.suffix == ".so"
    assert library_path(other_model, tmp_path) != library
    # No half-written files are left beside the libraries.
    assert [p.name for p in tmp_path.iterdir()] == [library.name]


def test_a_library_that_disagrees_is_not_used(
    model: LoadedModel,
    other_model: LoadedModel,
    night: np.ndarray,
    compiler: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The guard before every night: v2's library cannot score for v1."""
    wrong = compiled_engine(other_model, tmp_path, compiler, THREADS)
    with caplog.at_level(logging.WARNING):
        engine = verified(wrong, model, night, THREADS)
    assert engine.name == "native"
    assert "differs from LightGBM" in caplog.text
    right = compiled_engine(model, tmp_path, compiler, THREADS)
    assert verified(right, model, night, THREADS) is right


def test_the_policy_picks_the_engine(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    auto, native, compiled = (ScoringPolicy(engine=e) for e in ("auto", "native", "compiled"))
    assert engine_for(model, native, tmp_path).name == "native"
    assert not list(tmp_path.iterdir())  # native compiles nothing
    assert engine_for(model, auto, tmp_path).name == "compiled"

    # A machine without a C compiler: auto falls back, compiled says what is missing.
    empty = tmp_path / "no-tools"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("CC", raising=False)
    assert find_compiler() is None
    fallback = engine_for(model, auto, tmp_path / "elsewhere")
    assert fallback.name == "native" and "no C compiler" in fallback.detail
    with pytest.raises(CompilationUnavailable, match="needs a C compiler"):
        engine_for(model, compiled, tmp_path / "elsewhere")


def test_unknown_engines_are_refused() -> None:
    from churnops.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="CHURNOPS_SCORING_ENGINE"):
        load_settings({"CHURNOPS_SCORING_ENGINE": "gpu"})
    assert load_settings({}).scoring.engine == "auto"
    assert dataclasses.replace(ScoringPolicy(), engine="native").engine == "native"
