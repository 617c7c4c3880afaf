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
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import TrainParams
from churnops.train.boosting import boost, lightgbm_params
from churnops.train.frame import CATEGORICAL_FEATURES, LABEL_COLUMN, FrameSplit

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd

    from churnops.train.search import SearchSummary

log = logging.getLogger(__name__)


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
    negatives_kept: float = 1.0  # share of non-churners trained on (sample_negatives)
    feature_importance_gain: dict[str, float] = field(default_factory=dict)
    # The Optuna search that chose the parameters (churnops.train.search), if one ran.
    search: SearchSummary | None = None


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


def class_weight(params: TrainParams, labels: np.ndarray) -> float:
    """LightGBM's ``scale_pos_weight``: negatives / positives when balancing, else 1."""
    positives = int(labels.sum())
    return (len(labels) - positives) / positives if params.class_weighting == "balanced" else 1.0


def sample_negatives(
    train: tuple[pd.DataFrame, np.ndarray], params: TrainParams
) -> tuple[tuple[pd.DataFrame, np.ndarray], float]:
    """Every churner and a fixed-seed ``negative_sample_rate`` share of the other rows,
    once the training set has ``negative_sampling_min_rows`` rows; returns the rows kept
    and the share of negatives kept (1.0 when nothing was sampled)."""
    import numpy as np

    features, labels = train
    if len(labels) < params.negative_sampling_min_rows or params.negative_sample_rate >= 1:
        return train, 1.0
    draw = np.random.default_rng(params.seed).random(len(labels))
    keep = (labels == 1) | (draw < params.negative_sample_rate)
    return (features[keep], labels[keep]), params.negative_sample_rate


def train_model(split: FrameSplit, params: TrainParams | None = None) -> TrainedModel:
    """Train LightGBM on the split's train rows, early-stopped on its validation rows.

    With ``params.optuna`` the parameters are first searched for on the same train and
    validation windows (``churnops.train.search``; the test window stays unseen), and the
    model is trained with the best ones found.
    """
    params = params or split.params
    features = split.features
    categorical = categorical_features(features)
    train, negatives_kept = sample_negatives(
        (prepare_features(split.train, features), split.train[LABEL_COLUMN].to_numpy()), params
    )
    validation = (
        prepare_features(split.validation, features),
        split.validation[LABEL_COLUMN].to_numpy(),
    )
    scale_pos_weight = class_weight(params, train[1])

    search = None
    if params.optuna:
        from churnops.train.search import search_hyperparameters

        params, search = search_hyperparameters(
            params, train, validation, categorical, scale_pos_weight
        )
    lgb_params = lightgbm_params(params, scale_pos_weight)

    began = time.perf_counter()
    booster = boost(lgb_params, params, train, validation, categorical)
    seconds = time.perf_counter() - began
    best = booster.best_iteration
    gains = booster.feature_importance(importance_type="gain")
    slope, intercept = platt_scaling(
        _predict(booster, validation[0], raw_score=True), validation[1]
    )
    positives = int(train[1].sum())
    log.info(
        "trained %d trees on %d rows (%d churners, weight %.2f%s) in %.1fs",
        best,
        len(train[1]),
        positives,
        scale_pos_weight,
        f", {negatives_kept:.0%} of the other rows" if negatives_kept < 1 else "",
        seconds,
    )
    return TrainedModel(
        booster=booster,
        features=features,
        calibration_slope=slope,
        calibration_intercept=intercept,
        best_iteration=best,
        lgb_params=lgb_params,
        train_seconds=seconds + (search.seconds if search else 0.0),
        train_rows=len(train[1]),
        train_positives=positives,
        scale_pos_weight=scale_pos_weight,
        negatives_kept=negatives_kept,
        feature_importance_gain={f: float(g) for f, g in zip(features, gains, strict=True)},
        search=search,
    )
