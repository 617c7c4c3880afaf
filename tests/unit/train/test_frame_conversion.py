"""The training frame's conversion from the warehouse's Arrow rows (``_to_frame``): the
keys, label and categories as training expects them, the same values as a plain pandas
conversion, and a text column that is not a categorical feature refused by name."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from churnops.features.store import LABEL_COLUMN
from churnops.train.frame import CATEGORICAL_FEATURES, _to_frame

pytestmark = pytest.mark.unit

DAYS = [dt.date(2025, 3, 31), dt.date(2025, 4, 30)]


def _rows(extra: dict[str, pa.Array] | None = None) -> pa.Table:
    plans = ["standard", "basic", "premium", "basic"]
    columns = {
        "as_of_date": pa.array([DAYS[0], DAYS[0], DAYS[1], DAYS[1]], pa.date32()),
        "customer_id": pa.array([1, 2, 1, 2], pa.int64()),
        "plan_type": pa.array(plans),
        "payment_method": pa.array(["card", "paypal", "card", "sepa"]),
        "region": pa.array(["north", "east", "north", "east"]),
        "acquisition_channel": pa.array(["social", "organic", "social", "organic"]),
        "signup_date": pa.array([dt.date(2024, 1, 5)] * 4, pa.date32()),
        "calls_30d": pa.array([3, 0, 7, 1], pa.int32()),
        "monthly_fee_eur": pa.array([39.0, 19.0, 59.0, 19.0]),
        LABEL_COLUMN: pa.array([False, True, False, False]),
        **(extra or {}),
    }
    return pa.table(columns)


def test_keys_label_and_categories_come_out_as_training_uses_them() -> None:
    rows = _rows()
    frame = _to_frame(rows)
    assert list(frame.columns) == rows.column_names
    assert frame["as_of_date"].tolist() == [DAYS[0], DAYS[0], DAYS[1], DAYS[1]]
    assert all(type(day) is dt.date for day in frame["as_of_date"])
    assert str(frame[LABEL_COLUMN].dtype) == "int8"
    assert frame[LABEL_COLUMN].tolist() == [0, 1, 0, 0]
    for column in CATEGORICAL_FEATURES:
        expected = rows.column(column).to_pandas().astype("category")
        assert frame[column].dtype == expected.dtype  # categories sorted, as astype gives
        assert frame[column].tolist() == expected.tolist()
    assert list(frame["plan_type"].cat.categories) == ["basic", "premium", "standard"]
    assert frame["calls_30d"].tolist() == [3, 0, 7, 1]
    assert frame["monthly_fee_eur"].tolist() == [39.0, 19.0, 59.0, 19.0]
    assert str(frame["signup_date"].dtype).startswith("datetime64")


def test_a_text_column_that_is_no_categorical_feature_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match=r"\['promo_code'\]; add them to CATEGORICAL_FEATURES"):
        _to_frame(_rows({"promo_code": pa.array(["A", "B", "A", "C"])}))
