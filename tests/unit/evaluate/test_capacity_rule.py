"""The capacity threshold rule: N contacts a night become the threshold that flags the same
share of the validation window; the promotion decision at each model's own operating point."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnops.evaluate import decide, evaluate_model, score_on
from churnops.evaluate.card import model_card
from churnops.evaluate.measure import (
    capacity_threshold,
    choose_threshold,
    nightly_base_rows,
    rule_label,
)
from churnops.settings import PromotionPolicy, SettingsError, TrainParams, load_settings
from churnops.train import FrameSplit, TrainedModel, time_split, train_model
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

CAPACITY = TrainParams(
    min_train_positives=50,
    min_eval_positives=20,
    max_rounds=200,
    threshold_rule="capacity",
    contact_capacity=40,  # of the synthetic frame's 400 customers a night: 10 %
)


def _validation(rows_per_night: list[int]) -> pd.DataFrame:
    dates = [dt.date(2025, 1, 1) + dt.timedelta(days=7 * i) for i in range(len(rows_per_night))]
    return pd.DataFrame(
        {"as_of_date": np.repeat(dates, rows_per_night), "customer_id": range(sum(rows_per_night))}
    )


def test_a_nights_base_is_the_validation_rows_per_as_of_date_averaged() -> None:
    assert nightly_base_rows(_validation([10, 12, 14])) == 12.0
    assert nightly_base_rows(_validation([])) == 0.0


def test_the_threshold_flags_n_over_the_nightly_base_of_the_validation_rows() -> None:
    # 4 nights of 25 customers, 5 contacts a night: 20 % of the window, 20 of 100 rows.
    scores = np.random.default_rng(1).permutation(np.arange(100) / 100)
    y = np.zeros(100, dtype=int)
    params = dataclasses.replace(CAPACITY, contact_capacity=5)
    threshold = choose_threshold(y, scores, params, nightly_base=25.0)
    assert (scores >= threshold).sum() == 20
    assert threshold == pytest.approx(0.80)


def test_a_capacity_larger_than_a_night_flags_everyone() -> None:
    scores = np.array([0.3, 0.1, 0.7, 0.2])
    params = dataclasses.replace(CAPACITY, contact_capacity=10)
    threshold = choose_threshold(np.zeros(4, dtype=int), scores, params, nightly_base=2.0)
    assert threshold == 0.1 and (scores >= threshold).all()


def test_a_tiny_share_still_flags_the_top_row() -> None:
    scores = np.array([0.3, 0.9, 0.7, 0.2])
    assert capacity_threshold(scores, 0.01) == 0.9


def test_rows_tied_with_the_threshold_are_flagged_too() -> None:
    # 2 of 5 asked for; the second-ranked score is shared by three rows: all three flagged.
    scores = np.array([0.9, 0.5, 0.5, 0.5, 0.1])
    threshold = capacity_threshold(scores, 0.4)
    assert threshold == 0.5 and (scores >= threshold).sum() == 4


def test_the_capacity_rule_needs_its_nightly_base() -> None:
    with pytest.raises(ValueError, match="nightly base"):
        choose_threshold(np.zeros(3, dtype=int), np.array([0.1, 0.2, 0.3]), CAPACITY)


def test_the_rule_is_recorded_with_its_parameter() -> None:
    assert rule_label(TrainParams()) == "max_f1"
    assert rule_label(TrainParams(threshold_rule="recall_target")) == "recall_target@0.75"
    assert rule_label(CAPACITY) == "capacity@40"


def test_the_capacity_rule_without_a_capacity_fails_at_load_in_one_line() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"CHURNOPS_THRESHOLD_RULE": "capacity"})
    message = str(error.value)
    assert "\n" not in message
    assert "CHURNOPS_THRESHOLD_RULE=capacity" in message and "CHURNOPS_CONTACT_CAPACITY" in message
    settings = load_settings(
        {"CHURNOPS_THRESHOLD_RULE": "capacity", "CHURNOPS_CONTACT_CAPACITY": "500"}
    )
    assert (settings.train.threshold_rule, settings.train.contact_capacity) == ("capacity", 500)
    with pytest.raises(SettingsError, match="CHURNOPS_CONTACT_CAPACITY=0 must be at least 1"):
        load_settings({"CHURNOPS_CONTACT_CAPACITY": "0"})


# ----------------------------------------------------------- on a trained model
@pytest.fixture(scope="module")
def split() -> FrameSplit:
    return time_split(synthetic_frame(weeks=60), CAPACITY)


@pytest.fixture(scope="module")
def trained(split: FrameSplit) -> TrainedModel:
    return train_model(split)


class _Blurred:
    """A champion that knows less: the trained model's scores with noise (only ``predict``
    is read when a champion is re-scored)."""

    def __init__(self, model: TrainedModel, noise: float) -> None:
        self.model, self.noise = model, noise

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        rng = np.random.default_rng(11)
        scores = self.model.predict(frame) + rng.normal(0, self.noise, len(frame))
        return np.clip(scores, 1e-6, 1 - 1e-6)


def test_the_models_metrics_are_at_the_capacity_share_of_its_validation_window(
    split: FrameSplit, trained: TrainedModel
) -> None:
    metrics = evaluate_model(trained, split, explain=False)
    assert metrics.threshold_rule == "capacity@40"
    assert metrics.contact_capacity == 40 and metrics.capacity_base_rows == 400.0
    flagged = trained.predict(split.validation) >= metrics.threshold
    assert flagged.mean() == pytest.approx(0.10, abs=0.005)
    # On the test window the threshold flags about the same share.
    assert (trained.predict(split.test) >= metrics.threshold).mean() == pytest.approx(
        0.10, abs=0.03
    )
    card = model_card(trained, metrics, split, name="churn", version="1")
    assert "capacity@40" in card and "top 40 by score" in card


def test_challenger_and_champion_compare_recall_at_the_same_contact_volume(
    split: FrameSplit, trained: TrainedModel
) -> None:
    """Each model's threshold flags the capacity's share of the validation window under its
    own scores, so the decision compares recall (and precision) at the same number of
    contacts: the better ranker catches more churners with them, the worse fewer."""
    blurred = _Blurred(trained, noise=0.15)
    sharp, dull = score_on(trained, split), score_on(blurred, split)  # type: ignore[arg-type]
    for model, metrics in ((trained, sharp), (blurred, dull)):
        flagged = model.predict(split.validation) >= metrics.threshold
        assert flagged.mean() == pytest.approx(0.10, abs=0.005)
    # Same contacts, more churners caught: recall and precision rise together.
    assert sharp.recall > dull.recall + 0.05 and sharp.precision > dull.precision + 0.05
    policy = PromotionPolicy()
    assert decide(dull, sharp, policy).checks["recall"] is True
    worse = decide(sharp, dull, policy)
    assert worse.checks["recall"] is False and worse.action != "promote"
    assert any(reason.startswith("recall ") for reason in worse.reasons)
