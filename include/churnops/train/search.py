"""Hyper-parameter search with Optuna (``TrainParams.optuna``, ``CHURNOPS_OPTUNA``).

Each trial trains LightGBM on the train window with candidate parameters, early-stopped
on the validation window, and scores its validation AUC; the test window is never seen,
so the champion/challenger comparison on it stays fair. Optuna's TPE sampler is seeded
from ``TrainParams.seed`` and trials run one at a time with deterministic LightGBM, so a
search repeats exactly. The space is deliberately small: the rates, tree size and
regularisation that matter for a tabular churn model.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import TrainParams
from churnops.train.boosting import boost, lightgbm_params

if TYPE_CHECKING:
    import numpy as np
    import optuna
    import pandas as pd

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SearchSummary:
    """What the search tried and chose (logged with the training run)."""

    trials: int
    best_trial: int
    best_validation_auc: float
    best_params: dict[str, Any]
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)  # params + AUC per trial


def suggest_params(trial: optuna.Trial, base: TrainParams) -> TrainParams:
    """A candidate: ``base`` with the searched LightGBM parameters replaced."""
    return dataclasses.replace(
        base,
        learning_rate=trial.suggest_float("learning_rate", 0.02, 0.2, log=True),
        num_leaves=trial.suggest_int("num_leaves", 15, 127, log=True),
        min_child_samples=trial.suggest_int("min_child_samples", 20, 500, log=True),
        feature_fraction=trial.suggest_float("feature_fraction", 0.5, 1.0),
        bagging_fraction=trial.suggest_float("bagging_fraction", 0.5, 1.0),
        lambda_l2=trial.suggest_float("lambda_l2", 1e-3, 10.0, log=True),
    )


def search_hyperparameters(
    params: TrainParams,
    train: tuple[pd.DataFrame, np.ndarray],
    validation: tuple[pd.DataFrame, np.ndarray],
    categorical: list[str],
    scale_pos_weight: float,
) -> tuple[TrainParams, SearchSummary]:
    """Run ``params.optuna_trials`` trials (or until ``optuna_timeout_minutes``); return
    the best parameters and a summary. Each trial's result is logged as it ends. Every
    trial uses the final model's class weight (the searched parameters leave it alone)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own line per trial instead
    history: list[dict[str, Any]] = []

    def objective(trial: optuna.Trial) -> float:
        candidate = suggest_params(trial, params)
        booster = boost(
            lightgbm_params(candidate, scale_pos_weight), candidate, train, validation, categorical
        )
        auc = float(booster.best_score["validation"]["auc"])
        history.append(
            {"trial": trial.number, "validation_auc": auc, "trees": booster.best_iteration}
            | trial.params
        )
        log.info(
            "search trial %d/%d: validation AUC %.4f with %d trees (%s)",
            trial.number + 1,
            params.optuna_trials,
            auc,
            booster.best_iteration,
            ", ".join(f"{k}={v:.4g}" for k, v in trial.params.items()),
        )
        return auc

    began = time.perf_counter()
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=params.seed),
        study_name="churnops-lightgbm",
    )
    timeout = params.optuna_timeout_minutes * 60 if params.optuna_timeout_minutes else None
    study.optimize(objective, n_trials=params.optuna_trials, timeout=timeout)
    summary = SearchSummary(
        trials=len(study.trials),
        best_trial=study.best_trial.number,
        best_validation_auc=float(study.best_value),
        best_params=dict(study.best_params),
        seconds=time.perf_counter() - began,
        history=history,
    )
    log.info(
        "search: best of %d trials is #%d, validation AUC %.4f (%.0f s)",
        summary.trials,
        summary.best_trial,
        summary.best_validation_auc,
        summary.seconds,
    )
    return dataclasses.replace(params, **summary.best_params), summary
