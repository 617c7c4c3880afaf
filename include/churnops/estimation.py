"""Estimated performance before the labels mature: confidence-based performance estimation.

Churn labels mature 90 days after a night is scored, so the matured-cohort AUC sees a
decay three months late. CBPE, as NannyML documents it, estimates the performance of a
night from its scores alone:

1. On a labelled reference (the champion's own validation window) the raw scores are
   calibrated: an isotonic map from score to the observed churn rate. The map is kept as
   its knots, so applying it is ``np.interp`` and needs no scikit-learn object.
2. A night's calibrated probability ``p`` of each customer is the chance that customer
   churns. Summed over the rows the operating threshold flags (or not), ``p`` and
   ``1 - p`` give the expected confusion matrix; precision, recall and F1 come from it.
3. The expected ROC AUC is the chance that an expected churner outranks an expected
   stayer: each row counts ``p`` times as a positive and ``1 - p`` times as a negative,
   ranked by the raw score (the ranking the realized AUC will use).

Each estimate carries a sampling error: NannyML's components, measured once on the
reference (the spread of one row's contribution to the metric, over the share of rows
the metric is a mean over) and scaled by the night's size. The band is the estimate
± ``SAMPLING_ERROR_RANGE`` standard errors, clipped to [0, 1].

What it cannot see: CBPE assumes the calibration still holds, i.e. ``P(churn | score)``
has not moved. Under covariate shift (new kinds of customers, the acquisition campaign)
that holds and the estimate follows the realized AUC. Under concept drift (the same
customers now churn for other reasons, a price increase) it does not: the estimate stays
where the reference put it, and only matured labels show the decay.

Implemented here rather than depending on ``nannyml``: it pins ``lightgbm<4.6`` and sends
telemetry. A leaf module (arrays in, numbers out; no warehouse, registry or Airflow):
training fits the reference, monitoring applies it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# NannyML's confidence band: the estimate ± 3 sampling errors.
SAMPLING_ERROR_RANGE = 3.0


@dataclass(frozen=True)
class ErrorComponent:
    """One metric's sampling-error component, measured on the reference: the standard
    deviation of a row's contribution and the share of rows the metric averages over.
    On a night of ``n`` rows the metric's standard error is
    ``std / sqrt(n * fraction)``."""

    std: float
    fraction: float

    def standard_error(self, rows: int) -> float | None:
        relevant = rows * self.fraction
        return self.std / math.sqrt(relevant) if relevant > 0 else None


@dataclass(frozen=True)
class PerformanceReference:
    """What a model's nights are estimated against: fitted on its validation window."""

    calibration_scores: tuple[float, ...]
    calibration_probabilities: tuple[float, ...]
    threshold: float
    rows: int
    base_rate: float
    auc: float
    auc_error: ErrorComponent
    precision_error: ErrorComponent
    recall_error: ErrorComponent
    f1_error: ErrorComponent

    def calibrate(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated churn probability of each raw score (clipped at the ends)."""
        return np.interp(
            np.asarray(scores, dtype=np.float64),
            self.calibration_scores,
            self.calibration_probabilities,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PerformanceReference:
        errors = {
            name: ErrorComponent(**data[name])
            for name in ("auc_error", "precision_error", "recall_error", "f1_error")
        }
        return cls(
            calibration_scores=tuple(float(x) for x in data["calibration_scores"]),
            calibration_probabilities=tuple(float(x) for x in data["calibration_probabilities"]),
            threshold=float(data["threshold"]),
            rows=int(data["rows"]),
            base_rate=float(data["base_rate"]),
            auc=float(data["auc"]),
            **errors,
        )


@dataclass(frozen=True)
class Estimate:
    value: float | None
    sampling_error: float | None

    @property
    def lower(self) -> float | None:
        if self.value is None or self.sampling_error is None:
            return None
        return max(0.0, self.value - SAMPLING_ERROR_RANGE * self.sampling_error)

    @property
    def upper(self) -> float | None:
        if self.value is None or self.sampling_error is None:
            return None
        return min(1.0, self.value + SAMPLING_ERROR_RANGE * self.sampling_error)

    def contains(self, realized: float) -> bool:
        lower, upper = self.lower, self.upper
        return lower is not None and upper is not None and lower <= realized <= upper

    def describe(self) -> str:
        if self.value is None:
            return "n/a"
        if self.sampling_error is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.lower:.3f}, {self.upper:.3f}]"


@dataclass(frozen=True)
class EstimatedPerformance:
    """One night's estimate. ``mean_probability`` against ``base_rate`` is the prior
    drift: the churn rate the night's scores predict against the one the model learnt."""

    rows: int
    threshold: float
    auc: Estimate
    precision: Estimate
    recall: Estimate
    f1: Estimate
    mean_probability: float
    base_rate: float
    flagged: int

    def describe(self) -> str:
        return (
            f"estimated AUC {self.auc.describe()}, precision {self.precision.describe()}, "
            f"recall {self.recall.describe()}, F1 {self.f1.describe()} on {self.rows:,} "
            f"customers ({self.flagged:,} over the threshold {self.threshold:.3f}); "
            f"predicted churn rate {self.mean_probability:.3%} against the trained base rate "
            f"{self.base_rate:.3%}"
        )


@dataclass(frozen=True)
class RealizedPerformance:
    rows: int
    churners: int
    auc: float | None
    precision: float | None
    recall: float | None
    f1: float | None


def fit_reference(scores: np.ndarray, labels: np.ndarray, threshold: float) -> PerformanceReference:
    """Calibrate on a labelled window (the model's validation rows) and measure the
    sampling-error components there."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int8)
    if len(scores) != len(labels) or len(scores) == 0:
        raise ValueError("the reference needs as many labels as scores, and at least one")
    if labels.min() == labels.max():
        raise ValueError("the reference needs churners and stayers: its labels are one class")
    isotonic = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    isotonic.fit(scores, labels)
    flagged = scores >= threshold
    return PerformanceReference(
        calibration_scores=tuple(float(x) for x in isotonic.X_thresholds_),
        calibration_probabilities=tuple(float(y) for y in isotonic.y_thresholds_),
        threshold=float(threshold),
        rows=len(scores),
        base_rate=float(labels.mean()),
        auc=float(roc_auc_score(labels, scores)),
        auc_error=_auc_error(scores, labels),
        precision_error=_mean_error(labels[flagged], len(labels)),
        recall_error=_mean_error(flagged[labels == 1].astype(np.float64), len(labels)),
        f1_error=_f1_error(labels, flagged),
    )


def estimate_performance(
    reference: PerformanceReference, scores: np.ndarray
) -> EstimatedPerformance:
    """One night's expected AUC, precision, recall and F1 from its raw scores alone."""
    scores = np.asarray(scores, dtype=np.float64)
    rows = len(scores)
    probability = reference.calibrate(scores)
    flagged = scores >= reference.threshold
    tp = float(probability[flagged].sum())
    fp = float((1.0 - probability[flagged]).sum())
    fn = float(probability[~flagged].sum())
    precision = tp / (tp + fp) if tp + fp > 0 else None
    recall = tp / (tp + fn) if tp + fn > 0 else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn > 0 else None
    return EstimatedPerformance(
        rows=rows,
        threshold=reference.threshold,
        auc=Estimate(_expected_auc(scores, probability), reference.auc_error.standard_error(rows)),
        precision=Estimate(precision, reference.precision_error.standard_error(rows)),
        recall=Estimate(recall, reference.recall_error.standard_error(rows)),
        f1=Estimate(f1, reference.f1_error.standard_error(rows)),
        mean_probability=float(probability.mean()) if rows else 0.0,
        base_rate=reference.base_rate,
        flagged=int(flagged.sum()),
    )


def realized_performance(
    scores: np.ndarray, labels: np.ndarray, threshold: float
) -> RealizedPerformance:
    """The same measures once the labels are known (what the estimate is judged by)."""
    from sklearn.metrics import roc_auc_score

    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int8)
    flagged = scores >= threshold
    tp = int((flagged & (labels == 1)).sum())
    fp = int((flagged & (labels == 0)).sum())
    fn = int((~flagged & (labels == 1)).sum())
    two_classes = len(labels) > 0 and labels.min() != labels.max()
    return RealizedPerformance(
        rows=len(labels),
        churners=int(labels.sum()),
        auc=float(roc_auc_score(labels, scores)) if two_classes else None,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / (tp + fn) if tp + fn else None,
        f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None,
    )


def _expected_auc(scores: np.ndarray, probability: np.ndarray) -> float | None:
    """P(an expected churner's score > an expected stayer's), ties counted half: rows
    weighted ``p`` as positives and ``1 - p`` as negatives, grouped by equal score."""
    if len(scores) == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranked = scores[order]
    positive = probability[order]
    # Sum the weights per run of equal scores (ties rank together).
    starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
    positives = np.add.reduceat(positive, starts)
    negatives = np.add.reduceat(1.0 - positive, starts)
    below = np.cumsum(negatives) - negatives
    pairs = positives.sum() * negatives.sum()
    if pairs <= 0:
        return None
    return float((positives * (below + 0.5 * negatives)).sum() / pairs)


def _auc_error(scores: np.ndarray, labels: np.ndarray) -> ErrorComponent:
    """The AUC as the mean, over churners, of the share of stayers each one outranks:
    that share's spread, over the churners' fraction of the rows."""
    order = np.argsort(scores, kind="stable")
    positive = labels[order] == 1
    stayers_below = np.cumsum(~positive)[positive]
    placements = stayers_below / max(int((~positive).sum()), 1)
    return ErrorComponent(float(np.std(placements)), float(positive.mean()))


def _mean_error(values: np.ndarray, rows: int) -> ErrorComponent:
    """A metric that is the mean of ``values`` over a subset of ``rows`` rows."""
    if len(values) == 0:
        return ErrorComponent(0.0, 0.0)
    return ErrorComponent(float(np.std(values.astype(np.float64))), len(values) / rows)


def _f1_error(labels: np.ndarray, flagged: np.ndarray) -> ErrorComponent:
    """NannyML's F1 component: over the rows that are a TP, FP or FN, a TP counts 1 and
    the others 0, scaled so that their mean is the F1."""
    tp = int((flagged & (labels == 1)).sum())
    misses = int((flagged & (labels == 0)).sum() + (~flagged & (labels == 1)).sum())
    relevant = tp + misses
    if relevant == 0:
        return ErrorComponent(0.0, 0.0)
    scale = relevant / (0.5 * misses + tp)
    values = np.r_[np.ones(tp), np.zeros(misses)] * scale
    return ErrorComponent(float(np.std(values)), relevant / len(labels))


@dataclass(frozen=True)
class PriorDrift:
    """Prior probability drift (seed 000), which of its two rates moved:

    - ``predicted``: the night's mean predicted churn probability against the base rate the
      model was trained on (the mix of customers moved towards more or less risk);
    - ``realized``: a matured cohort's realized churn rate against the rate predicted for
      it (the customers churn more or less than their scores say: calibration moved).

    A rate moved when it is more than ``SAMPLING_ERROR_RANGE`` binomial standard errors
    from the rate it is compared with."""

    predicted_moved: bool
    realized_moved: bool | None  # None until the cohort's labels mature
    findings: tuple[str, ...]


def prior_drift(
    mean_probability: float,
    base_rate: float,
    rows: int,
    realized_rate: float | None = None,
    realized_rows: int | None = None,
) -> PriorDrift:
    findings = []
    predicted_moved = _moved(mean_probability, base_rate, rows)
    if predicted_moved:
        findings.append(
            f"the predicted churn rate moved: {mean_probability:.2%} against the trained base "
            f"rate {base_rate:.2%} on {rows:,} customers"
        )
    realized_moved = None
    if realized_rate is not None and realized_rows:
        realized_moved = _moved(realized_rate, mean_probability, realized_rows)
        if realized_moved:
            findings.append(
                f"the realized churn rate moved against the predicted: {realized_rate:.2%} "
                f"churned, {mean_probability:.2%} predicted, on {realized_rows:,} customers"
            )
    return PriorDrift(predicted_moved, realized_moved, tuple(findings))


def _moved(rate: float, expected: float, rows: int) -> bool:
    if rows <= 0 or not 0.0 < expected < 1.0:
        return False
    standard_error = math.sqrt(expected * (1.0 - expected) / rows)
    return abs(rate - expected) > SAMPLING_ERROR_RANGE * standard_error
