"""What a model scored on one test window: the numbers every promotion decision reads.

Plain data, no model code: ``churnops.evaluate.measure`` fills it, ``decide`` compares two
of them, the registry stores it as flat MLflow metrics and as JSON in the decision log.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CalibrationBin:
    """One of the calibration curve's equal-width score bins."""

    lower: float
    upper: float
    rows: int
    mean_predicted: float  # NaN when the bin is empty
    observed_rate: float  # share of churners in the bin; NaN when empty


@dataclass(frozen=True)
class ModelMetrics:
    """A model's results on one test window (``test_start``..``test_end`` as-of dates).

    ``recall``/``precision``/``f1`` are at ``threshold``, chosen on the validation window
    by ``threshold_rule`` (with the capacity rule, ``contact_capacity`` customers a night
    out of ``capacity_base_rows``). ``segment_auc`` keys are ``<segment>.<value>`` (for example
    ``plan_type.basic``, ``tenure.new``, ``value.top_decile``); a segment with too few
    churners in the window has no entry. ``train_auc`` is None when the model was only
    re-scored on this window (a champion), since its own training data was another one.
    """

    auc: float
    recall: float
    precision: float
    f1: float
    brier: float
    threshold: float
    threshold_rule: str
    test_start: dt.date
    test_end: dt.date
    test_rows: int
    test_positives: int
    validation_auc: float | None = None
    train_auc: float | None = None
    baseline_auc: float | None = None
    baseline: str | None = None
    segment_auc: Mapping[str, float] = field(default_factory=dict)
    segment_rows: Mapping[str, int] = field(default_factory=dict)
    calibration: tuple[CalibrationBin, ...] = ()
    roc_curve: tuple[tuple[float, float], ...] = ()  # (false positive rate, recall) points
    feature_importance: Mapping[str, float] = field(default_factory=dict)  # gain
    shap_importance: Mapping[str, float] = field(default_factory=dict)  # mean |SHAP|
    # The capacity rule only: customers contacted a night, and the night's base (validation
    # rows per as-of date) whose share of N the threshold flags.
    contact_capacity: int | None = None
    capacity_base_rows: float | None = None

    @property
    def auc_gap(self) -> float | None:
        """Train AUC minus test AUC: how much the model over-fits its training window."""
        return None if self.train_auc is None else self.train_auc - self.auc

    @property
    def positive_rate(self) -> float:
        return self.test_positives / self.test_rows if self.test_rows else math.nan

    def same_window_as(self, other: ModelMetrics) -> bool:
        return (self.test_start, self.test_end, self.test_rows, self.test_positives) == (
            other.test_start,
            other.test_end,
            other.test_rows,
            other.test_positives,
        )

    def flat(self) -> dict[str, float]:
        """Scalar metrics under flat names (MLflow metrics: ``test_auc``, ``segment_auc.<key>``)."""
        values: dict[str, float | None] = {
            "test_auc": self.auc,
            "test_recall": self.recall,
            "test_precision": self.precision,
            "test_f1": self.f1,
            "test_brier": self.brier,
            "threshold": self.threshold,
            "test_rows": float(self.test_rows),
            "test_positives": float(self.test_positives),
            "test_positive_rate": self.positive_rate,
            "validation_auc": self.validation_auc,
            "train_auc": self.train_auc,
            "train_test_auc_gap": self.auc_gap,
            "baseline_auc": self.baseline_auc,
        }
        for key, auc in self.segment_auc.items():
            values[f"segment_auc.{key}"] = auc
        return {k: float(v) for k, v in values.items() if v is not None and not math.isnan(v)}

    def summary(self) -> str:
        """One line for logs and tags: AUC, recall, precision, F1, Brier."""
        return (
            f"AUC {self.auc:.3f}, recall {self.recall:.3f}, precision {self.precision:.3f}, "
            f"F1 {self.f1:.3f}, Brier {self.brier:.4f} at threshold {self.threshold:.3f} "
            f"on {self.test_rows:,} rows ({self.test_positives:,} churners), "
            f"as-of {self.test_start}..{self.test_end}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (dates as ISO strings, NaN as None)."""
        raw = asdict(self)
        raw["test_start"] = self.test_start.isoformat()
        raw["test_end"] = self.test_end.isoformat()
        raw["roc_curve"] = [list(point) for point in self.roc_curve]
        return _nan_to_none(raw)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ModelMetrics:
        data = dict(raw)
        data["test_start"] = dt.date.fromisoformat(data["test_start"])
        data["test_end"] = dt.date.fromisoformat(data["test_end"])
        data["calibration"] = tuple(
            CalibrationBin(
                lower=float(b["lower"]),
                upper=float(b["upper"]),
                rows=int(b["rows"]),
                mean_predicted=_float_or_nan(b["mean_predicted"]),
                observed_rate=_float_or_nan(b["observed_rate"]),
            )
            for b in data.get("calibration") or ()
        )
        data["roc_curve"] = tuple(tuple(point) for point in data.get("roc_curve") or ())
        return cls(**data)


def _float_or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nan_to_none(v) for v in value]
    return value
