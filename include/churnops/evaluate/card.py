"""The model card: what the model is for, what it was trained on, how good it is, its limits."""

from __future__ import annotations

import math

from churnops.evaluate.metrics import ModelMetrics
from churnops.train.frame import CATEGORICAL_FEATURES, FrameSplit
from churnops.train.model import TrainedModel


def model_card(
    trained: TrainedModel,
    metrics: ModelMetrics,
    split: FrameSplit,
    *,
    name: str = "churn",
    version: str | None = None,
    code_version: str | None = None,
) -> str:
    """Markdown model card for one trained model."""
    w = split.windows
    counts = split.counts()
    title = f"# Model card: {name}" + (f" version {version}" if version else "")
    lines = [
        title,
        "",
        "## Purpose",
        "",
        "Ranks active customers by their probability of churning (cancelling) within the next "
        "90 days, so that retention offers reach the customers most at risk first. Scored "
        "nightly in batch for every active customer. Not meant for decisions about an "
        "individual customer without a person in the loop.",
        "",
        "## Model",
        "",
        f"- LightGBM binary classifier, {trained.best_iteration} trees (early-stopped on "
        f"validation AUC), {len(trained.features)} features "
        f"({', '.join(sorted(c for c in trained.features if c in CATEGORICAL_FEATURES))} categorical).",
        f"- Churners weighted x{trained.scale_pos_weight:.2f} (negatives / positives); "
        "scores recalibrated to probabilities on the validation window (Platt: slope "
        f"{trained.calibration_slope:.3f}, intercept {trained.calibration_intercept:.3f}).",
        f"- Operating threshold {metrics.threshold:.3f} ({metrics.threshold_rule}, chosen on "
        "the validation window"
        + (
            f": it flags {metrics.contact_capacity:,} of the {metrics.capacity_base_rows:,.0f} "
            "customers of an average night; nightly, the top "
            f"{metrics.contact_capacity:,} by score are contacted"
            if metrics.contact_capacity and metrics.capacity_base_rows
            else ""
        )
        + ").",
        f"- Trained in {trained.train_seconds:.1f} s"
        + (f"; code version {code_version}" if code_version else "")
        + ".",
        "",
        "## Data",
        "",
        "Features from `marts.fct_customer_features` joined with matured labels from "
        f"`marts.fct_churn_labels`, one as-of snapshot every {split.params.snapshot_every_days} "
        "days; split by as-of date (never at random).",
        "",
        "| part | as-of dates | rows | churners |",
        "| --- | --- | ---: | ---: |",
        f"| train | {w.train_start} .. {w.train_end} | {counts['train'][0]:,} | "
        f"{counts['train'][1]:,} |",
        f"| validation | {w.validation_start} .. {w.validation_end} | "
        f"{counts['validation'][0]:,} | {counts['validation'][1]:,} |",
        f"| test | {w.test_start} .. {w.test_end} | {counts['test'][0]:,} | "
        f"{counts['test'][1]:,} |",
        "",
        f"Train rows whose 90-day label window reaches into validation are dropped "
        f"({w.gap_rows_dropped:,} rows).",
    ]
    if w.scale < 1:
        lines.append(
            f"History was short: the 12:3:3-month windows were shrunk to {w.scale:.0%} "
            f"({w.train_months:.1f} / {w.validation_months:.1f} / {w.test_months:.1f} months)."
        )
    lines += [
        "",
        "## Metrics (test window)",
        "",
        "| metric | value |",
        "| --- | ---: |",
        f"| AUC | {metrics.auc:.3f} |",
        f"| recall | {metrics.recall:.3f} |",
        f"| precision | {metrics.precision:.3f} |",
        f"| F1 | {metrics.f1:.3f} |",
        f"| Brier | {metrics.brier:.4f} |",
        f"| churn rate | {metrics.positive_rate:.3f} |",
    ]
    if metrics.train_auc is not None and metrics.auc_gap is not None:
        lines.append(f"| train AUC (gap) | {metrics.train_auc:.3f} ({metrics.auc_gap:+.3f}) |")
    if metrics.validation_auc is not None:
        lines.append(f"| validation AUC | {metrics.validation_auc:.3f} |")
    if metrics.baseline_auc is not None:
        lines.append(f"| baseline AUC ({metrics.baseline}) | {metrics.baseline_auc:.3f} |")
    lines += [
        "",
        "## Segments (test window)",
        "",
        "| segment | rows | AUC |",
        "| --- | ---: | ---: |",
    ]
    for key, rows in metrics.segment_rows.items():
        auc = metrics.segment_auc.get(key)
        lines.append(f"| {key} | {rows:,} | {'n/a' if auc is None else f'{auc:.3f}'} |")
    if metrics.shap_importance:
        lines += ["", "## Main drivers (mean |SHAP|, log-odds)", ""]
        for feature, value in list(metrics.shap_importance.items())[:10]:
            lines.append(f"- {feature}: {value:.3f}")
    lines += ["", "## Calibration (test window)", "", "| score bin | rows | predicted | observed |"]
    lines.append("| --- | ---: | ---: | ---: |")
    for b in metrics.calibration:
        if b.rows:
            lines.append(
                f"| {b.lower:.1f}-{b.upper:.1f} | {b.rows:,} | {_fmt(b.mean_predicted)} | "
                f"{_fmt(b.observed_rate)} |"
            )
    lines += [
        "",
        "## Limits",
        "",
        "- Labels need 90 days to mature: the newest labelled as-of date is 90 days old, so "
        "the model never sees the most recent behaviour-to-churn relation; a sudden change "
        "(pricing, a campaign) shows up in its metrics only months later. Drift monitoring "
        "covers the gap.",
        "- Segments with fewer than "
        f"{split.params.min_segment_positives} churners in the test window have no AUC "
        "above: results there are unknown, not good.",
        "- Trained on the customers of one market and product range; new plans, channels or "
        "regions are outside the categories it knows (scored as 'missing').",
        "- Correlation, not cause: SHAP values explain the model, not why customers leave.",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"
