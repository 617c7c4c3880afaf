"""The churn model: a LightGBM booster, its feature list, and how its scores become probabilities.

Class imbalance (about 8% churners) is handled by weighting the churners by
negatives / positives (LightGBM's ``scale_pos_weight``). A model trained that way ranks
well but its raw scores are not probabilities (inflated odds, and early stopping on AUC
leaves them compressed). So the raw score (log-odds) is recalibrated on the validation
window with Platt scaling: ``p = sigmoid(slope * raw + intercept)``. Monotonic, so AUC
and the ranking are unchanged, while Brier and the calibration curve mean something. The
two numbers are stored with every registered version.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import TrainParams
from churnops.train.frame import CATEGORICAL_FEATURES, LABEL_COLUMN, FrameSplit

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


class OptunaUnavailable(RuntimeError):
    """The hyper-parameter search was asked for, but optuna is not installed."""


def prepare_features(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The model's input: ``features`` in order, all float64, categoricals as fixed codes.

    A categorical's code is its position in the landing contract's list (plan_type
    basic=0, standard=1, premium=2, ...), the same in training and scoring whatever values
    a frame happens to hold; a value outside the list becomes missing (NaN), which
    LightGBM sends down its "other" branch. A numeric-only input also keeps the MLflow
    pyfunc flavour usable (its schema enforcement rejects pandas categories).
    """
    import numpy as np
    import pandas as pd

    missing = [f for f in features if f not in frame.columns]
    if missing:
        raise KeyError(f"the frame lacks model features: {', '.join(missing)}")
    data = frame.loc[:, features].astype(
        {f: "float64" for f in features if f not in CATEGORICAL_FEATURES}
    )
    for column, categories in CATEGORICAL_FEATURES.items():
        if column in data.columns:
            codes = pd.Categorical(frame[column], categories=list(categories)).codes
            data[column] = np.where(codes >= 0, codes, np.nan).astype("float64")
    return data


def categorical_features(features: list[str]) -> list[str]:
    return [f for f in features if f in CATEGORICAL_FEATURES]


@dataclass
class ChurnModel:
    """A booster plus what is needed to score with it (the registry's unit of exchange)."""

    booster: lgb.Booster
    features: list[str]
    # Platt scaling of the raw score (log-odds): p = sigmoid(slope * raw + intercept).
    calibration_slope: float
    calibration_intercept: float

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        return _predict(self.booster, prepare_features(frame, self.features), raw_score=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Churn probability within 90 days, per row of ``frame``."""
        import numpy as np

        logit = self.calibration_slope * self.raw_score(frame) + self.calibration_intercept
        return 1.0 / (1.0 + np.exp(-logit))

    def contributions(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per-row SHAP values (LightGBM's own TreeSHAP, ``pred_contrib``), one column per feature."""
        import pandas as pd

        values = _predict(self.booster, prepare_features(frame, self.features), pred_contrib=True)
        return pd.DataFrame(values[:, :-1], columns=self.features, index=frame.index)


@dataclass
class TrainedModel(ChurnModel):
    """A freshly trained model with what its training saw."""

    best_iteration: int
    lgb_params: dict[str, Any]
    train_seconds: float
    train_rows: int
    train_positives: int
    scale_pos_weight: float
    feature_importance_gain: dict[str, float] = field(default_factory=dict)


def _predict(booster: lgb.Booster, data: pd.DataFrame, **kwargs: bool) -> np.ndarray:
    """``Booster.predict`` as a dense array (its signature also allows sparse and lists)."""
    import numpy as np

    return np.asarray(booster.predict(data, **kwargs))


def platt_scaling(raw_scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of a logistic regression of the labels on the raw scores."""
    from sklearn.linear_model import LogisticRegression

    # Practically unregularised: two parameters, thousands of rows.
    fit = LogisticRegression(C=1e6).fit(raw_scores.reshape(-1, 1), labels)
    return float(fit.coef_[0, 0]), float(fit.intercept_[0])


def lightgbm_params(params: TrainParams, scale_pos_weight: float) -> dict[str, Any]:
    """LightGBM parameters: deterministic for a seed and a thread count."""
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "min_child_samples": params.min_child_samples,
        "feature_fraction": params.feature_fraction,
        "bagging_fraction": params.bagging_fraction,
        "bagging_freq": params.bagging_freq,
        "lambda_l2": params.lambda_l2,
        "scale_pos_weight": scale_pos_weight,
        "seed": params.seed,
        "deterministic": True,
        "force_row_wise": True,  # with deterministic: no data-dependent row/col-wise choice
        "num_threads": params.num_threads,
        "verbosity": -1,
    }


def train_model(split: FrameSplit, params: TrainParams | None = None) -> TrainedModel:
    """Train LightGBM on the split's train rows, early-stopped on its validation rows."""
    params = params or split.params
    if params.optuna:
        raise OptunaUnavailable(
            "TrainParams.optuna (CHURNOPS_OPTUNA) asks for a hyper-parameter search, but optuna "
            "is not installed in this environment; unset it to train with the fixed parameters"
        )
    # OpenMP threads that busy-wait for work slow LightGBM down many times over when the
    # cores are shared (Airflow workers, dbt): yield instead. Read once, when the OpenMP
    # runtime loads, so it only helps if lightgbm is not imported yet in this process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import lightgbm as lgb

    features = split.features
    y_train = split.train[LABEL_COLUMN].to_numpy()
    positives = int(y_train.sum())
    negatives = len(y_train) - positives
    scale_pos_weight = negatives / positives if params.class_weighting == "balanced" else 1.0
    lgb_params = lightgbm_params(params, scale_pos_weight)

    began = time.perf_counter()
    train_set = lgb.Dataset(
        prepare_features(split.train, features),
        label=y_train,
        categorical_feature=categorical_features(features),
        free_raw_data=True,
    )
    validation_set = lgb.Dataset(
        prepare_features(split.validation, features),
        label=split.validation[LABEL_COLUMN].to_numpy(),
        reference=train_set,
    )
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=params.max_rounds,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)],
    )
    seconds = time.perf_counter() - began
    best = booster.best_iteration or booster.current_iteration()
    # Keep only the trees early stopping chose, so every later predict uses them by default.
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    gains = booster.feature_importance(importance_type="gain")
    slope, intercept = platt_scaling(
        _predict(booster, prepare_features(split.validation, features), raw_score=True),
        split.validation[LABEL_COLUMN].to_numpy(),
    )
    log.info(
        "trained %d trees on %d rows (%d churners, weight %.2f) in %.1fs",
        best,
        len(y_train),
        positives,
        scale_pos_weight,
        seconds,
    )
    return TrainedModel(
        booster=booster,
        features=features,
        calibration_slope=slope,
        calibration_intercept=intercept,
        best_iteration=best,
        lgb_params=lgb_params,
        train_seconds=seconds,
        train_rows=len(y_train),
        train_positives=positives,
        scale_pos_weight=scale_pos_weight,
        feature_importance_gain={f: float(g) for f, g in zip(features, gains, strict=True)},
    )
