"""The time split: windows, proportional shrinking, the label gap, and honest refusals."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from churnops.settings import TrainParams
from churnops.train import InsufficientHistory, time_split
from churnops.train.frame import DAYS_PER_MONTH, feature_columns
from tests.unit.train.synthetic import synthetic_frame

pytestmark = pytest.mark.unit

PARAMS = TrainParams(min_train_positives=50, min_eval_positives=20)


def test_full_history_gets_12_3_3_months_and_the_test_window_is_the_latest() -> None:
    frame = synthetic_frame(weeks=100)  # ~23 months of weekly snapshots
    split = time_split(frame, PARAMS)
    w = split.windows
    last = frame["as_of_date"].max()
    assert w.scale == 1.0
    assert w.test_end == last
    assert (w.test_end - w.test_start).days + 1 == round(3 * DAYS_PER_MONTH)
    assert (w.validation_end - w.validation_start).days + 1 == round(3 * DAYS_PER_MONTH)
    assert w.validation_end + dt.timedelta(days=1) == w.test_start
    assert w.train_start == w.validation_start - dt.timedelta(days=round(12 * DAYS_PER_MONTH))
    assert split.test["as_of_date"].min() >= w.test_start
    assert split.validation["as_of_date"].max() <= w.validation_end
    # Older history than the train window is not used.
    assert split.train["as_of_date"].min() >= w.train_start > frame["as_of_date"].min()


def test_no_train_label_window_reaches_into_validation() -> None:
    split = time_split(synthetic_frame(weeks=100), PARAMS)
    w = split.windows
    latest_label_end = max(split.train["as_of_date"]) + dt.timedelta(days=90)
    assert latest_label_end <= w.validation_start
    assert w.gap_rows_dropped > 0
    # The rows dropped are exactly the train-window rows within 90 days of validation.
    frame = synthetic_frame(weeks=100)
    in_gap = frame[
        (frame["as_of_date"] > w.validation_start - dt.timedelta(days=90))
        & (frame["as_of_date"] < w.validation_start)
    ]
    assert w.gap_rows_dropped == len(in_gap)
    assert "dropped whose label window reaches into validation" in w.describe()


def test_short_history_shrinks_all_windows_at_the_same_ratio() -> None:
    frame = synthetic_frame(weeks=40)  # ~9 months
    split = time_split(frame, PARAMS)
    w = split.windows
    span = (frame["as_of_date"].max() - frame["as_of_date"].min()).days + 1
    assert w.scale == pytest.approx(span / (18 * DAYS_PER_MONTH))
    assert w.train_months / w.test_months == pytest.approx(4.0)
    assert w.validation_months == pytest.approx(w.test_months)
    assert w.train_start == frame["as_of_date"].min()
    assert "history short" in w.describe()
    assert len(split.train) and len(split.validation) and len(split.test)


def test_too_short_a_history_says_what_it_has_and_needs() -> None:
    frame = synthetic_frame(weeks=20)  # ~4.4 months < the 6-month minimum
    with pytest.raises(InsufficientHistory) as raised:
        time_split(frame, PARAMS)
    message = str(raised.value)
    assert "20 snapshot as-of dates over 134 days (4.4 months" in message
    assert "needs at least 6 months (183 days; 18 for full-size windows)" in message


def test_too_few_churners_names_the_part_and_the_counts() -> None:
    frame = synthetic_frame(weeks=40, churn_intercept=-9.0)  # almost nobody churns
    with pytest.raises(InsufficientHistory) as raised:
        time_split(frame, PARAMS)
    message = str(raised.value)
    assert "leaves too few labelled churners" in message
    assert "train:" in message and "(needs at least 50 churners" in message


def test_the_minimum_is_configurable() -> None:
    frame = synthetic_frame(weeks=26)  # ~6 months: enough only with a lower minimum
    with pytest.raises(InsufficientHistory):
        time_split(frame, dataclasses.replace(PARAMS, min_history_months=7.0))
    split = time_split(frame, dataclasses.replace(PARAMS, min_history_months=5.5))
    assert split.windows.scale < 0.4


def test_keys_and_label_are_never_features() -> None:
    split = time_split(synthetic_frame(weeks=40), PARAMS)
    assert "customer_id" not in split.features
    assert "as_of_date" not in split.features
    assert "churned_within_90d" not in split.features
    assert split.features == feature_columns(split.train)
    assert "cancellation_tickets_90d" in split.features


def test_window_parameters_are_validated() -> None:
    from churnops.settings import SettingsError

    with pytest.raises(SettingsError, match="min_history_months=20"):
        TrainParams(min_history_months=20)
    with pytest.raises(SettingsError, match="unknown threshold rule"):
        TrainParams(threshold_rule="max_precision")
    with pytest.raises(SettingsError, match="must be positive"):
        TrainParams(test_months=0)


def test_windows_planned_from_date_counts_alone_match_the_frame_split() -> None:
    """split_windows (what load_split plans on before reading any feature row) gives the
    same windows as splitting the loaded frame, and part_of names each date's part."""
    from churnops.train import split_windows

    frame = synthetic_frame(weeks=100)
    split = time_split(frame, PARAMS)
    planned = split_windows(frame["as_of_date"].value_counts().to_dict(), PARAMS)
    assert planned == split.windows
    for part_name in ("train", "validation", "test"):
        part = getattr(split, part_name)
        assert {planned.part_of(day) for day in part["as_of_date"]} == {part_name}
    kept = {day for day in frame["as_of_date"] if planned.part_of(day) is not None}
    dropped = frame[~frame["as_of_date"].isin(kept)]
    in_window_but_dropped = dropped[dropped["as_of_date"] >= planned.train_start]
    assert len(in_window_but_dropped) == planned.gap_rows_dropped > 0
    assert (dropped["as_of_date"] < planned.validation_start).all()


def test_a_frame_split_on_given_windows_keeps_their_gap_count() -> None:
    """A frame loaded for its windows (the gap dates never read) splits like the whole."""
    from churnops.train import split_windows

    frame = synthetic_frame(weeks=100)
    planned = split_windows(frame["as_of_date"].value_counts().to_dict(), PARAMS)
    pruned = frame[[planned.part_of(day) is not None for day in frame["as_of_date"]]]
    whole, from_pruned = time_split(frame, PARAMS), time_split(pruned, PARAMS, planned)
    assert from_pruned.windows == whole.windows
    assert from_pruned.counts() == whole.counts()
    assert from_pruned.train.equals(whole.train)
    assert from_pruned.test.equals(whole.test)
