"""Training: the training frame, its time split, the LightGBM model and its evaluation.

Importing this package is cheap; pandas, lightgbm, sklearn and matplotlib load on first use.
The full retrain (train, register, champion/challenger, promote) is ``churnops.train.pipeline``.
"""

from churnops.train.evaluation import evaluate_model
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
    "evaluate_model",
    "feature_columns",
    "load_split",
    "load_training_frame",
    "plan_split",
    "prepare_features",
    "split_windows",
    "time_split",
    "train_model",
]
