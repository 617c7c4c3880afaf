"""CBPE on nights whose labels are drawn from a known P(churn | score): the estimate must
hold where the calibration holds (no drift, covariate shift) and cannot follow a change
of P(churn | score) itself (concept drift), which is what matured labels are for."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from churnops.estimation import (
    PerformanceReference,
    estimate_performance,
    fit_reference,
    realized_performance,
)

pytestmark = pytest.mark.unit

NIGHTS = 120
NIGHT_ROWS = 4_000


def churn_probability(scores: np.ndarray, steepness: float = 6.0) -> np.ndarray:
    """The true P(churn | score) of the synthetic world: rises with the score."""
    return 1.0 / (1.0 + np.exp(-steepness * (scores - 0.75)))


def night(rng: np.random.Generator, rows: int, a: float = 2.0, b: float = 5.0, steepness=6.0):
    scores = rng.beta(a, b, rows)
    labels = rng.random(rows) < churn_probability(scores, steepness)
    return scores, labels.astype(np.int8)


@pytest.fixture(scope="module")
def reference() -> PerformanceReference:
    scores, labels = night(np.random.default_rng(1), 40_000)
    return fit_reference(scores, labels, threshold=0.45)


def coverage(reference: PerformanceReference, seed: int, **world) -> tuple[float, list]:
    rng = np.random.default_rng(seed)
    inside, pairs = 0, []
    for _ in range(NIGHTS):
        scores, labels = night(rng, NIGHT_ROWS, **world)
        estimate = estimate_performance(reference, scores)
        realized = realized_performance(scores, labels, reference.threshold)
        inside += estimate.auc.contains(realized.auc)
        pairs.append((estimate, realized))
    return inside / NIGHTS, pairs


def test_on_unchanged_nights_the_realized_auc_falls_in_the_band(reference) -> None:
    share, pairs = coverage(reference, seed=2)
    assert share >= 0.90, share
    # The band is a real band: neither zero-width nor the whole unit interval.
    widths = [e.auc.upper - e.auc.lower for e, _ in pairs]
    assert 0.005 < float(np.median(widths)) < 0.2
    # Unbiased on average (the mean error is far smaller than one night's band).
    bias = np.mean([e.auc.value - r.auc for e, r in pairs])
    assert abs(bias) < 0.005, bias
    # Precision, recall and F1 follow too.
    for metric in ("precision", "recall", "f1"):
        inside = np.mean([getattr(e, metric).contains(getattr(r, metric)) for e, r in pairs])
        assert inside >= 0.90, (metric, inside)


def test_under_covariate_shift_estimate_and_realized_agree(reference) -> None:
    # A campaign brings customers alike to one another and riskier than the base:
    # the mix moves, P(churn | score) does not.
    share, pairs = coverage(reference, seed=3, a=8.0, b=8.0)
    assert share >= 0.90, share
    moved = np.mean([r.auc for _, r in pairs]) - reference.auc
    assert abs(moved) > 0.05, "the shift must move the realized AUC for the test to mean much"
    # The prior drift shows: the predicted churn rate rises above the trained base rate.
    assert np.mean([e.mean_probability for e, _ in pairs]) > 1.5 * reference.base_rate


def test_under_concept_drift_the_estimate_cannot_follow(reference) -> None:
    # The same customers now churn for other reasons: P(churn | score) flattens.
    share, pairs = coverage(reference, seed=4, steepness=1.5)
    realized = np.mean([r.auc for _, r in pairs])
    estimated = np.mean([e.auc.value for e, _ in pairs])
    assert realized < reference.auc - 0.1
    assert abs(estimated - reference.auc) < 0.01  # still where the reference put it
    assert share < 0.10, share


def test_the_expected_auc_is_the_auc_when_the_probabilities_are_the_labels() -> None:
    rng = np.random.default_rng(5)
    scores = np.round(rng.random(5_000), 2)  # ties, counted half as roc_auc_score does
    labels = (rng.random(5_000) < scores).astype(np.int8)
    reference = fit_reference(scores, labels, threshold=0.5)
    # Probabilities that are the labels themselves (a perfect oracle): the expected AUC
    # must then be exactly the realized one, ties and all.
    from churnops.estimation import _expected_auc

    assert _expected_auc(scores, labels.astype(float)) == pytest.approx(
        roc_auc_score(labels, scores), abs=1e-12
    )
    assert reference.calibrate(np.array([-1.0, 2.0])).tolist() == [
        reference.calibration_probabilities[0],
        reference.calibration_probabilities[-1],
    ]


def test_the_reference_round_trips_through_a_dict(reference) -> None:
    again = PerformanceReference.from_dict(reference.as_dict())
    assert again == reference
    scores, _ = night(np.random.default_rng(6), 1_000)
    assert estimate_performance(again, scores) == estimate_performance(reference, scores)


def test_a_reference_of_one_class_is_refused() -> None:
    with pytest.raises(ValueError, match="one class"):
        fit_reference(np.array([0.1, 0.2]), np.array([0, 0]), threshold=0.5)


def test_prior_drift_names_which_rate_moved() -> None:
    from churnops.estimation import prior_drift

    steady = prior_drift(0.081, 0.080, 2_000, realized_rate=0.083, realized_rows=2_000)
    assert (steady.predicted_moved, steady.realized_moved, steady.findings) == (False, False, ())

    riskier_mix = prior_drift(0.12, 0.08, 2_000)
    assert riskier_mix.predicted_moved and riskier_mix.realized_moved is None
    assert riskier_mix.findings == (
        "the predicted churn rate moved: 12.00% against the trained base rate 8.00% on "
        "2,000 customers",
    )

    miscalibrated = prior_drift(0.08, 0.08, 2_800, realized_rate=0.103, realized_rows=2_800)
    assert not miscalibrated.predicted_moved and miscalibrated.realized_moved
    assert miscalibrated.findings == (
        "the realized churn rate moved against the predicted: 10.30% churned, 8.00% "
        "predicted, on 2,800 customers",
    )
