"""LightGBM's parameters and one early-stopped boosting run.

Shared by the final model (``churnops.train.model``) and every trial of the
hyper-parameter search (``churnops.train.search``): a leaf, so neither imports the other
for it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from churnops.settings import TrainParams

if TYPE_CHECKING:
    import lightgbm as lgb
    import numpy as np
    import pandas as pd


def lightgbm_params(params: TrainParams, scale_pos_weight: float) -> dict[str, Any]:
    """LightGBM parameters: deterministic for a seed and a thread count."""
    return {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": params.learning_rate,
        "num_leaves": params.num_leaves,
        "max_depth": params.max_depth,
        "max_bin": params.max_bin,
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


def boost(
    lgb_params: dict[str, Any],
    params: TrainParams,
    train: tuple[pd.DataFrame, np.ndarray],
    validation: tuple[pd.DataFrame, np.ndarray],
    categorical: list[str],
) -> lgb.Booster:
    """Boost on prepared ``(features, labels)``, early-stopped on the validation window's
    AUC; the booster keeps only the trees early stopping chose (so every later predict
    uses them by default), and ``best_score`` holds its validation AUC."""
    # OpenMP threads that busy-wait for work slow LightGBM down many times over when the
    # cores are shared (Airflow workers, dbt): yield instead. Read once, when the OpenMP
    # runtime loads, so it only helps if lightgbm is not imported yet in this process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import lightgbm as lgb

    train_set = lgb.Dataset(
        train[0], label=train[1], categorical_feature=categorical, free_raw_data=True
    )
    validation_set = lgb.Dataset(validation[0], label=validation[1], reference=train_set)
    booster = lgb.train(
        lgb_params,
        train_set,
        num_boost_round=params.max_rounds,
        valid_sets=[validation_set],
        valid_names=["validation"],
        callbacks=[
            lgb.early_stopping(
                params.early_stopping_rounds,
                verbose=False,
                min_delta=params.early_stopping_min_delta,
            )
        ],
    )
    best = booster.best_iteration or booster.current_iteration()
    best_score = booster.best_score
    trimmed = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
    trimmed.best_iteration = best
    trimmed.best_score = best_score
    return trimmed
