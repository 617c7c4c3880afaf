"""Measure a model on a split: its ``ModelMetrics`` on the test window.

``evaluate_model`` measures the model just trained (train AUC and explanations included);
``score_on`` measures any model, a re-loaded champion included, the same way on another
model's split, so that two models compare like for like.

The operating threshold is chosen on the validation window, never on the test window:

- ``max_f1`` (default): the threshold with the best F1 on validation;
- ``recall_target``: the highest threshold whose validation recall reaches the target
  (catch at least that share of churners, with as few false alarms as possible);
- ``capacity``: the retention team contacts ``contact_capacity`` (N) customers a night, the
  top N by score. A threshold cannot say "the top N", but it can flag the same share:
  N over the size of a night's scored base, which the validation window measures as its
  rows per as-of date, averaged (each as-of date there is one night's active customers,
  every one of them labelled: the validation window is never sampled). The threshold is
  the score of the validation row ranked at that share (capped at every row when N is
  larger than a night); rows tied with it are flagged too. The test window's recall and
  precision, and so the champion/challenger comparison, are at that threshold, where both
  models flag the same share of the validation window. The nightly ``contact`` flag
  applies the rule itself: the night's top N (``churnops.score``).

Segments: plan_type, acquisition_channel, tenure (``new`` = is_new_customer, else
``tenured``) and value (``top_decile`` of monthly_revenue_eur within the test window,
else ``rest``). A segment with fewer churners than ``min_segment_positives`` (or no
non-churners) gets no AUC: it is left out, not guessed.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from churnops.evaluate.metrics import CalibrationBin, ModelMetrics
from churnops.settings import TrainParams
from churnops.train.frame import LABEL_COLUMN, FrameSplit

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from churnops.train.model import ChurnModel

CALIBRATION_BINS = 10
ROC_POINTS = 101
SEGMENT_COLUMNS = ("plan_type", "acquisition_channel")
BASELINE_NAME = "logistic regression on log(1 + tenure_days)"


def evaluate_model(
    model: ChurnModel,
    split: FrameSplit,
    *,
    include_train: bool = True,
    explain: bool = True,
) -> ModelMetrics:
    """Test-window metrics, threshold from validation, segments, calibration, baseline.

    ``include_train``: also the train AUC (and so the train/test gap): only meaningful for
    the model trained on this split. ``explain``: gain importance and mean |SHAP| per feature.
    """
    from sklearn.metrics import (
        brier_score_loss,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
        roc_curve,
    )

    params = split.params
    y_val = split.validation[LABEL_COLUMN].to_numpy()
    val_scores = model.predict(split.validation)
    base_rows = nightly_base_rows(split.validation)
    threshold = choose_threshold(y_val, val_scores, params, nightly_base=base_rows)

    y_test = split.test[LABEL_COLUMN].to_numpy()
    scores = model.predict(split.test)
    flagged = scores >= threshold
    fpr, tpr, _ = roc_curve(y_test, scores)

    train_auc = None
    if include_train:
        train = _sample(split.train, params.train_auc_sample_rows, params.seed)
        train_auc = float(roc_auc_score(train[LABEL_COLUMN], model.predict(train)))

    importance: dict[str, float] = {}
    shap: dict[str, float] = {}
    if explain:
        gains = model.booster.feature_importance(importance_type="gain")
        importance = _sorted_desc(dict(zip(model.features, map(float, gains), strict=True)))
        sample = _sample(split.test, params.shap_sample_rows, params.seed)
        mean_abs = model.contributions(sample).abs().mean()
        shap = _sorted_desc({str(k): float(v) for k, v in mean_abs.items()})

    segment_auc, segment_rows = segment_aucs(split.test, scores, params)
    return ModelMetrics(
        auc=float(roc_auc_score(y_test, scores)),
        recall=float(recall_score(y_test, flagged, zero_division=0)),
        precision=float(precision_score(y_test, flagged, zero_division=0)),
        f1=float(f1_score(y_test, flagged, zero_division=0)),
        brier=float(brier_score_loss(y_test, scores)),
        threshold=float(threshold),
        threshold_rule=rule_label(params),
        contact_capacity=params.contact_capacity if params.threshold_rule == "capacity" else None,
        capacity_base_rows=base_rows if params.threshold_rule == "capacity" else None,
        test_start=split.windows.test_start,
        test_end=split.windows.test_end,
        test_rows=len(y_test),
        test_positives=int(y_test.sum()),
        validation_auc=float(roc_auc_score(y_val, val_scores)),
        train_auc=train_auc,
        baseline_auc=baseline_auc(split),
        baseline=BASELINE_NAME,
        segment_auc=segment_auc,
        segment_rows=segment_rows,
        calibration=calibration_bins(y_test, scores),
        roc_curve=_thin_roc(fpr, tpr),
        feature_importance=importance,
        shap_importance=shap,
    )


def score_on(model: ChurnModel, split: FrameSplit) -> ModelMetrics:
    """``model``'s metrics on ``split``'s test window (threshold from its validation window).

    For re-scoring the champion on the challenger's window: no train AUC (the champion was
    trained on other data) and no SHAP (the champion's explanations were logged with it).
    """
    return evaluate_model(model, split, include_train=False, explain=False)


def rule_label(params: TrainParams) -> str:
    """The rule with its parameter, as recorded: ``max_f1``, ``recall_target@0.75``,
    ``capacity@500``."""
    if params.threshold_rule == "recall_target":
        return f"recall_target@{params.recall_target:g}"
    if params.threshold_rule == "capacity":
        return f"capacity@{params.contact_capacity}"
    return params.threshold_rule


def nightly_base_rows(window: pd.DataFrame) -> float:
    """The size of a night's scored base, as a window of as-of snapshots shows it: its
    rows per as-of date, averaged."""
    dates = window["as_of_date"].nunique()
    return len(window) / dates if dates else 0.0


def capacity_threshold(scores: np.ndarray, share: float) -> float:
    """The threshold that flags ``share`` of ``scores`` (at least one row, at most all):
    the score ranked at that share, so every row scoring at least it is flagged."""
    import numpy as np

    if len(scores) == 0:
        raise ValueError("no scores to choose a capacity threshold on")
    flagged = min(len(scores), max(1, round(share * len(scores))))
    # The flagged-th highest score: a partition, not a full sort.
    return float(np.partition(scores, len(scores) - flagged)[len(scores) - flagged])


def choose_threshold(
    y: np.ndarray,
    scores: np.ndarray,
    params: TrainParams,
    *,
    nightly_base: float | None = None,
) -> float:
    """The operating threshold on the validation rows, by ``params.threshold_rule``
    (``capacity`` needs ``nightly_base``: see :func:`nightly_base_rows`)."""
    import numpy as np
    from sklearn.metrics import precision_recall_curve

    if params.threshold_rule == "capacity":
        if params.contact_capacity is None or not nightly_base:
            raise ValueError("the capacity rule needs a contact capacity and a nightly base")
        return capacity_threshold(scores, min(1.0, params.contact_capacity / nightly_base))
    precision, recall, thresholds = precision_recall_curve(y, scores)
    # precision/recall have one more entry than thresholds (the recall-0 end point).
    precision, recall = precision[:-1], recall[:-1]
    if params.threshold_rule == "recall_target":
        reaching = np.flatnonzero(recall >= params.recall_target - 1e-12)
        # thresholds ascend, recall descends: the last index reaching the target is the
        # highest threshold that still catches that share of churners.
        return float(thresholds[reaching[-1]]) if len(reaching) else float(thresholds[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1))])


def segment_aucs(
    test: pd.DataFrame, scores: np.ndarray, params: TrainParams
) -> tuple[dict[str, float], dict[str, int]]:
    """AUC per segment of the test rows (see the module docstring), and the segment sizes."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    y = test[LABEL_COLUMN].to_numpy()
    masks: dict[str, np.ndarray] = {}
    for column in SEGMENT_COLUMNS:
        values = test[column].astype(str).to_numpy()
        for value in sorted(set(values)):
            masks[f"{column}.{value}"] = values == value
    is_new = test["is_new_customer"].to_numpy() == 1
    masks["tenure.new"] = is_new
    masks["tenure.tenured"] = ~is_new
    revenue = test["monthly_revenue_eur"].to_numpy()
    top_decile = revenue >= np.quantile(revenue, 0.9)
    masks["value.top_decile"] = top_decile
    masks["value.rest"] = ~top_decile

    aucs: dict[str, float] = {}
    rows: dict[str, int] = {}
    for key, mask in masks.items():
        rows[key] = int(mask.sum())
        positives = int(y[mask].sum())
        if positives >= params.min_segment_positives and positives < rows[key]:
            aucs[key] = float(roc_auc_score(y[mask], scores[mask]))
    return aucs, rows


def calibration_bins(
    y: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS
) -> tuple[CalibrationBin, ...]:
    """Equal-width score bins on [0, 1]: mean predicted vs observed churn rate."""
    import numpy as np

    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1], right=False), 0, bins - 1)
    result = []
    for b in range(bins):
        mask = index == b
        n = int(mask.sum())
        result.append(
            CalibrationBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                rows=n,
                mean_predicted=float(scores[mask].mean()) if n else math.nan,
                observed_rate=float(y[mask].mean()) if n else math.nan,
            )
        )
    return tuple(result)


def baseline_auc(split: FrameSplit) -> float:
    """AUC of the trivial model: a logistic regression on tenure alone, fit on train."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    def tenure(frame: pd.DataFrame) -> np.ndarray:
        return np.log1p(frame["tenure_days"].clip(lower=0).to_numpy(dtype=float)).reshape(-1, 1)

    baseline = LogisticRegression().fit(tenure(split.train), split.train[LABEL_COLUMN])
    return float(
        roc_auc_score(split.test[LABEL_COLUMN], baseline.predict_proba(tenure(split.test))[:, 1])
    )


def _thin_roc(fpr: np.ndarray, tpr: np.ndarray) -> tuple[tuple[float, float], ...]:
    """The ROC curve at ROC_POINTS false-positive rates (enough to draw it, small to store)."""
    import numpy as np

    grid = np.linspace(0.0, 1.0, ROC_POINTS)
    return tuple((float(x), float(y)) for x, y in zip(grid, np.interp(grid, fpr, tpr), strict=True))


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return frame if len(frame) <= rows else frame.sample(n=rows, random_state=seed)


def _sorted_desc(values: dict[str, float]) -> dict[str, float]:
    return dict(sorted(((k, float(v)) for k, v in values.items()), key=lambda kv: -kv[1]))
