"""Training: the training frame, its time split and the LightGBM model.

Importing this package is cheap; pandas, lightgbm and sklearn load on first use. Measuring
the model is ``churnops.evaluate``; the full retrain (train, evaluate, register,
champion/challenger, promote) is ``churnops.retrain``.
"""

from churnops.train.frame import (
    CATEGORICAL_FEATURES,
    FrameSplit,
    InsufficientHistory,
    SplitWindows,
    feature_columns,
    load_split,
    load_training_frame,
    plan_split,
    split_windows,
    time_split,
)
from churnops.train.model import (
    ChurnModel,
    TrainedModel,
    prepare_features,
    train_model,
)

__all__ = [
    "CATEGORICAL_FEATURES",
    "ChurnModel",
    "FrameSplit",
    "InsufficientHistory",
    "SplitWindows",
    "TrainedModel",
    "feature_columns",
    "load_split",
    "load_training_frame",
    "plan_split",
    "prepare_features",
    "split_windows",
    "time_split",
    "train_model",
]
