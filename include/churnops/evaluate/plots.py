"""Evaluation plots as PNG files: ROC, calibration, feature importance, SHAP summary.

Figures are built with ``matplotlib.figure.Figure`` directly, not pyplot: no global state,
no display, and the PNG goes through the Agg renderer whatever backend is configured.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.evaluate.metrics import ModelMetrics

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from churnops.train.model import ChurnModel

TOP_FEATURES = 20
SHAP_FEATURES = 15
SHAP_POINTS = 2_000


def write_plots(
    model: ChurnModel,
    metrics: ModelMetrics,
    test: pd.DataFrame,
    out_dir: Path,
    seed: int = 0,
) -> dict[str, Path]:
    """Write roc.png, calibration.png, importance.png and shap_summary.png under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "roc": _roc(metrics),
        "calibration": _calibration(metrics),
        "importance": _importance(metrics),
        "shap_summary": _shap_summary(model, test, seed),
    }
    paths = {}
    for name, figure in figures.items():
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=110, bbox_inches="tight")
        paths[name] = path
        _close(figure)
    return paths


def _figure(width: float = 6.0, height: float = 5.0) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _close(figure: Figure) -> None:
    figure.clear()


def _roc(metrics: ModelMetrics) -> Figure:
    figure = _figure()
    ax = figure.subplots()
    fpr = [p[0] for p in metrics.roc_curve]
    tpr = [p[1] for p in metrics.roc_curve]
    ax.plot(fpr, tpr, label=f"model (AUC {metrics.auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    if metrics.baseline_auc is not None:
        ax.plot([], [], " ", label=f"baseline AUC {metrics.baseline_auc:.3f}")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("recall (true positive rate)")
    ax.set_title(f"ROC, test as-of {metrics.test_start}..{metrics.test_end}")
    ax.legend(loc="lower right")
    return figure


def _calibration(metrics: ModelMetrics) -> Figure:
    figure = _figure()
    ax = figure.subplots()
    bins = [b for b in metrics.calibration if b.rows and not math.isnan(b.mean_predicted)]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.plot(
        [b.mean_predicted for b in bins],
        [b.observed_rate for b in bins],
        marker="o",
        label=f"model (Brier {metrics.brier:.4f})",
    )
    for b in bins:
        ax.annotate(f"{b.rows:,}", (b.mean_predicted, b.observed_rate), fontsize=7)
    ax.set_xlabel("mean predicted churn probability (bin)")
    ax.set_ylabel("observed churn rate")
    ax.set_title("Calibration (10 equal-width bins; labels: rows)")
    ax.legend(loc="upper left")
    return figure


def _importance(metrics: ModelMetrics) -> Figure:
    top = list(metrics.feature_importance.items())[:TOP_FEATURES]
    figure = _figure(7.0, 0.3 * len(top) + 1.5)
    ax = figure.subplots()
    total = sum(metrics.feature_importance.values()) or 1.0
    names = [name for name, _ in reversed(top)]
    shares = [gain / total for _, gain in reversed(top)]
    ax.barh(names, shares)
    ax.set_xlabel("share of total gain")
    ax.set_title(f"Feature importance (gain), top {len(top)}")
    return figure


def _shap_summary(model: ChurnModel, test: pd.DataFrame, seed: int) -> Figure:
    """A beeswarm-style summary: per feature, each row's SHAP value coloured by feature value."""
    import numpy as np

    sample = test if len(test) <= SHAP_POINTS else test.sample(n=SHAP_POINTS, random_state=seed)
    contributions = model.contributions(sample)
    order = contributions.abs().mean().sort_values(ascending=False).index[:SHAP_FEATURES]
    figure = _figure(7.5, 0.35 * len(order) + 1.5)
    ax = figure.subplots()
    rng = np.random.default_rng(seed)
    for row, feature in enumerate(reversed(list(order))):
        values = contributions[feature].to_numpy()
        raw = sample[feature]
        if raw.dtype.kind in "biuf":
            ranks = raw.rank(pct=True).to_numpy()
        else:  # categorical: colour by category code
            codes = raw.astype("category").cat.codes.to_numpy().astype(float)
            ranks = codes / max(codes.max(), 1.0)
        jitter = rng.uniform(-0.3, 0.3, len(values))
        points = ax.scatter(
            values, row + jitter, c=ranks, cmap="coolwarm", s=4, alpha=0.6, vmin=0, vmax=1
        )
    ax.set_yticks(range(len(order)), list(reversed(list(order))))
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("SHAP value (impact on churn log-odds)")
    ax.set_title(f"SHAP summary ({len(sample):,} test rows)")
    colorbar = figure.colorbar(points, ax=ax)
    colorbar.set_label("feature value (low -> high)")
    return figure
