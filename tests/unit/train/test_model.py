"""Training and evaluation on an in-memory frame with a known churn mechanism."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnops.contracts import PLAN_TYPES
from churnops.evaluate import evaluate_model
from churnops.evaluate.card import model_card
from churnops.evaluate.measure import calibration_bins, choose_threshold
from churnops.evaluate.plots import write_plots
from churnops.settings import TrainParams
from churnops.train import (
    FrameSplit,
    TrainedModel,
    prepare_features,
    time_split,
    train_model,
)
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

PARAMS = TrainParams(min_train_positives=50, min_eval_positives=20, max_rounds=200)


@pytest.fixture(scope="module")
def split() -> FrameSplit:
    return time_split(synthetic_frame(weeks=60), PARAMS)


@pytest.fixture(scope="module")
def trained(split: FrameSplit) -> TrainedModel:
    return train_model(split)


def test_categoricals_get_the_contract_codes_whatever_the_frame_holds() -> None:
    frame = pd.DataFrame(
        {"plan_type": ["premium", "basic", "gold"], "tenure_days": [1, 2, 3]},
    )
    prepared = prepare_features(frame, ["tenure_days", "plan_type"])
    assert list(prepared.columns) == ["tenure_days", "plan_type"]
    assert prepared["plan_type"].iloc[0] == PLAN_TYPES.index("premium")
    assert prepared["plan_type"].iloc[1] == PLAN_TYPES.index("basic")
    assert math.isnan(prepared["plan_type"].iloc[2])  # unknown -> missing, not a new code
    assert (prepared.dtypes == "float64").all()
    with pytest.raises(KeyError, match="lacks model features: logins_30d"):
        prepare_features(frame, ["logins_30d"])


def test_training_is_deterministic(split: FrameSplit, trained: TrainedModel) -> None:
    again = train_model(split)
    assert again.booster.model_to_string() == trained.booster.model_to_string()
    assert again.calibration_slope == trained.calibration_slope


def test_the_model_learns_the_mechanism(split: FrameSplit, trained: TrainedModel) -> None:
    metrics = evaluate_model(trained, split)
    assert metrics.auc > 0.75
    assert metrics.auc > (metrics.baseline_auc or 0) + 0.1  # tenure carries no signal here
    assert trained.features[0] != "customer_id" and "customer_id" not in trained.features
    top = list(metrics.shap_importance)[:3]
    assert set(top) == {"cancellation_tickets_90d", "logins_30d", "late_payments_90d"}
    assert metrics.train_auc is not None and metrics.auc_gap is not None
    assert trained.scale_pos_weight > 5  # churners are rare and weighted up


def test_scores_are_calibrated_probabilities(split: FrameSplit, trained: TrainedModel) -> None:
    metrics = evaluate_model(trained, split, explain=False)
    predicted = trained.predict(split.test)
    assert predicted.min() > 0 and predicted.max() < 1
    # Platt scaling on validation: the mean prediction tracks the churn rate, although
    # churners were weighted ~x10 in training.
    assert predicted.mean() == pytest.approx(metrics.positive_rate, abs=0.02)
    assert len(metrics.calibration) == 10
    assert sum(b.rows for b in metrics.calibration) == metrics.test_rows


def test_segments_cover_plan_channel_tenure_and_value(
    split: FrameSplit, trained: TrainedModel
) -> None:
    metrics = evaluate_model(trained, split, explain=False)
    for key in ("plan_type.basic", "acquisition_channel.organic", "tenure.tenured", "value.rest"):
        assert 0.5 < metrics.segment_auc[key] <= 1.0
    assert metrics.segment_rows["value.top_decile"] == pytest.approx(
        0.1 * metrics.test_rows, rel=0.05
    )
    # Too few new customers churn in the window: no AUC rather than a noisy one.
    assert metrics.segment_rows["tenure.new"] > 0
    assert "tenure.new" not in metrics.segment_auc or metrics.segment_rows["tenure.new"] > 100


def test_threshold_rules() -> None:
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1, 1, 1])
    scores = np.linspace(0.05, 0.95, 10)
    best_f1 = choose_threshold(y, scores, TrainParams())
    assert best_f1 == pytest.approx(scores[4])  # F1 1.0 except for one negative above it
    recall_all = choose_threshold(y, scores, TrainParams(threshold_rule="recall_target"))
    # Recall target 0.75 of 5 churners: 4 must be caught; the highest such threshold.
    assert recall_all == pytest.approx(scores[6])
    strict = TrainParams(threshold_rule="recall_target", recall_target=1.0)
    assert choose_threshold(y, scores, strict) == pytest.approx(scores[4])


def test_calibration_bins_are_equal_width_and_count_every_row() -> None:
    bins = calibration_bins(np.array([0, 1, 1, 0]), np.array([0.05, 0.95, 1.0, 0.0]))
    assert [b.rows for b in bins] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert bins[9].observed_rate == 1.0 and bins[0].observed_rate == 0.0
    assert math.isnan(bins[5].mean_predicted)


def test_the_optuna_search_picks_parameters_on_validation_and_repeats(split: FrameSplit) -> None:
    params = dataclasses.replace(PARAMS, optuna=True, optuna_trials=4, max_rounds=60)
    searched = train_model(split, params)
    search = searched.search
    assert search is not None and search.trials == 4 and len(search.history) == 4
    best = max(search.history, key=lambda t: t["validation_auc"])
    assert search.best_trial == best["trial"]
    assert search.best_validation_auc == pytest.approx(best["validation_auc"])
    # The final model is trained with the best trial's parameters...
    assert searched.lgb_params["num_leaves"] == best["num_leaves"]
    assert searched.lgb_params["learning_rate"] == pytest.approx(best["learning_rate"])
    # ...so it reaches the same validation AUC, and the trials did differ.
    assert searched.booster.best_score["validation"]["auc"] == pytest.approx(
        search.best_validation_auc
    )
    assert len({t["validation_auc"] for t in search.history}) > 1
    # Seeded sampler and deterministic LightGBM: the search repeats exactly.
    again = train_model(split, params)
    assert again.search is not None and again.search.history == search.history
    assert again.booster.model_to_string() == searched.booster.model_to_string()


def test_without_the_flag_no_search_runs(trained: TrainedModel) -> None:
    assert trained.search is None
    assert trained.lgb_params["num_leaves"] == PARAMS.num_leaves


def test_plots_and_card(split: FrameSplit, trained: TrainedModel, tmp_path: Path) -> None:
    metrics = evaluate_model(trained, split)
    paths = write_plots(trained, metrics, split.test, tmp_path)
    assert set(paths) == {"roc", "calibration", "importance", "shap_summary"}
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 10_000
    card = model_card(trained, metrics, split, version="7")
    assert card.startswith("# Model card: churn version 7")
    w = split.windows
    assert f"| test | {w.test_start} .. {w.test_end} | {len(split.test):,} |" in card
    assert f"| AUC | {metrics.auc:.3f} |" in card
    assert "## Limits" in card and "## Segments (test window)" in card


def test_large_training_sets_keep_every_churner_and_a_seeded_share_of_the_rest() -> None:
    from churnops.train.model import sample_negatives

    rng = np.random.default_rng(1)
    labels = (rng.random(200_000) < 0.08).astype(int)
    features = pd.DataFrame({"x": np.arange(len(labels), dtype="float64")})
    params = dataclasses.replace(PARAMS, negative_sample_rate=0.25, negative_sampling_min_rows=1000)
    (kept_x, kept_y), share = sample_negatives((features, labels), params)
    assert share == 0.25
    assert kept_y.sum() == labels.sum()  # every churner
    negatives = len(labels) - labels.sum()
    assert abs((len(kept_y) - kept_y.sum()) / negatives - 0.25) < 0.01
    assert list(kept_x["x"]) == sorted(kept_x["x"])  # row order kept, features aligned
    assert np.array_equal(labels[kept_x["x"].to_numpy(dtype=int)], kept_y)
    (again_x, _), _ = sample_negatives((features, labels), params)
    assert again_x.equals(kept_x)  # fixed seed


def test_small_training_sets_are_not_sampled() -> None:
    from churnops.train.model import sample_negatives

    labels = np.array([0, 1, 0, 0])
    features = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    (kept_x, kept_y), share = sample_negatives((features, labels), PARAMS)
    assert share == 1.0 and kept_x is features and kept_y is labels


def test_max_depth_bins_and_early_stopping_reach_lightgbm(split: FrameSplit) -> None:
    params = dataclasses.replace(PARAMS, max_depth=3, max_bin=15, early_stopping_min_delta=0.5)
    model = train_model(split, params)
    assert model.lgb_params["max_depth"] == 3 and model.lgb_params["max_bin"] == 15
    dump = model.booster.dump_model()
    assert dump["max_feature_idx"] == len(split.features) - 1

    def depth(node: dict) -> int:
        children = [node[k] for k in ("left_child", "right_child") if k in node]
        return 1 + max((depth(c) for c in children), default=0)

    assert max(depth(t["tree_structure"]) for t in dump["tree_info"]) <= 3 + 1
    # No AUC gain of 0.5 is possible: early stopping keeps the best of the first rounds.
    assert model.best_iteration <= params.early_stopping_rounds + 1
