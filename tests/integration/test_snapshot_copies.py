"""The training snapshots' columnar copies give the warehouse's rows, and only while the
marts still hold them (``churnops.features.copies``), on DuckDB and on PostgreSQL.

One short bootstrapped history per engine. A training read through the copies equals the
same read from the warehouse, cold (the copies written) and warm (read back); a copy is
read while its fingerprint holds (shown by planting a changed copy under it), and after
dbt rebuilds its as-of date, that copy is never read again; the nightly writes the copy of
the snapshot whose label matured, and removes the old ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from churnops.features.copies import SnapshotCopies
from churnops.features.store import FeatureStore
from churnops.settings import LABEL_COLUMN, Settings, load_settings
from tests.conftest import fresh_postgres_database

pytestmark = pytest.mark.integration

HISTORY = {"CHURNOPS_SIM_CUSTOMERS": "800", "CHURNOPS_SIM_DAYS": "260"}


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def history(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    from churnops.pipeline import bootstrap_history

    state = tmp_path_factory.mktemp(f"copies-{request.param}")
    with (
        fresh_postgres_database("churnops_copies")
        if request.param == "postgres"
        else _no_database()
    ) as dsn:
        engine = {"CHURNOPS_WAREHOUSE": "postgres", "CHURNOPS_POSTGRES_DSN": dsn} if dsn else {}
        settings = load_settings({"CHURNOPS_STATE_DIR": str(state), **HISTORY, **engine})
        bootstrap_history(settings, say=lambda _line: None)
        yield settings
        from churnops.warehouse import warehouse_for

        warehouse_for(settings).dispose()


class _no_database:
    def __enter__(self) -> str:
        return ""

    def __exit__(self, *_: object) -> None:
        return None


def _stores(settings: Settings):  # -> (with copies, warehouse only)
    from churnops.stores import stores_for

    features = stores_for(settings).features
    return features, FeatureStore(features.warehouse)


def _labelled_dates(features: FeatureStore) -> list[dt.date]:
    rows = features.warehouse.tuples(
        "SELECT DISTINCT as_of_date FROM marts.fct_churn_labels ORDER BY as_of_date"
    )
    return [day for (day,) in rows]


def test_copies_give_the_warehouses_rows_cold_and_warm(
    history: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    copied, plain = _stores(history)
    assert copied.copies is not None
    dates = _labelled_dates(copied)[-70::30]  # three snapshots, 30 days apart
    assert len(dates) == 3
    expected = plain.labelled_snapshots(dates)
    assert expected.num_rows > 0
    assert set(pc.unique(expected.column("as_of_date")).to_pylist()) == set(dates)

    with caplog.at_level(logging.INFO, logger="churnops.features.store"):
        cold = copied.labelled_snapshots(dates)
        warm = copied.labelled_snapshots(dates)
    assert cold.equals(expected, check_metadata=False)
    assert warm.equals(expected, check_metadata=False)
    assert cold.schema == warm.schema == expected.schema
    messages = [r.getMessage() for r in caplog.records if "labelled snapshots" in r.message]
    assert (
        "0 as-of dates from their columnar copies, 3 from the warehouse (3 copies written)"
        in messages[0]
    )
    assert (
        "3 as-of dates from their columnar copies, 0 from the warehouse (0 copies written)"
        in messages[1]
    )
    assert copied.copies.as_of_dates()[-3:] == dates


def test_a_copy_is_read_until_dbt_rebuilds_its_date(history: Settings) -> None:
    from churnops.features import build_features

    copied, plain = _stores(history)
    copies = copied.copies
    assert copies is not None
    day, other = _labelled_dates(copied)[-45], _labelled_dates(copied)[-15]
    truth = plain.labelled_snapshots([day])
    copied.labelled_snapshots([day, other])  # both copied
    fingerprints = copied.snapshot_fingerprints([day, other])

    # The control: a copy under the current fingerprint is what is read, even when it is
    # not the warehouse's rows (every label flipped).
    flipped = truth.set_column(
        truth.schema.get_field_index(LABEL_COLUMN),
        LABEL_COLUMN,
        pc.subtract(pa.scalar(1, truth.column(LABEL_COLUMN).type), truth.column(LABEL_COLUMN)),
    )
    copies.write(day, fingerprints[day], flipped)
    assert copied.labelled_snapshots([day]).equals(flipped, check_metadata=False)

    # A reprocessed night rebuilds the features of `day` (and the labels of day - 90).
    build_features(history, day, day)
    after = copied.snapshot_fingerprints([day, other])
    assert after[day] != fingerprints[day]
    assert after[other] == fingerprints[other]
    assert copies.has(day, fingerprints[day])  # the stale copy is still there ...
    read = copied.labelled_snapshots([day])
    assert read.equals(truth, check_metadata=False)  # ... but not read: the warehouse is
    # ... and the fresh copy replaced it.
    assert copies.has(day, after[day]) and not copies.has(day, fingerprints[day])


def test_the_nightly_copies_every_snapshot_a_training_tonight_reads(
    history: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    from churnops.train.frame import keep_training_copies, load_split, snapshot_dates_to_copy

    copied, plain = _stores(history)
    # Windows small enough for this short history (170 labelled days) to plan a split on.
    params = dataclasses.replace(
        history.train,
        train_months=4.0,  # more than the 90-day gap before validation
        validation_months=0.5,
        test_months=0.5,
        min_history_months=1.0,
        snapshot_every_days=7,
        min_train_positives=1,
        min_eval_positives=1,
        full_windows_only=False,
    )
    labelled = _labelled_dates(copied)
    matured = labelled[-1]
    night = matured + dt.timedelta(days=params.label_horizon_days)

    done = keep_training_copies(copied, night, params)
    # Every date counted back from the matured one, within the window, that has labels.
    expected_dates = [d for d in snapshot_dates_to_copy(matured, params) if d in set(labelled)]
    assert len(expected_dates) >= 10
    assert sorted(done["copies_written"] + done["already_current"]) == sorted(
        day.isoformat() for day in expected_dates
    )
    assert done["copies_written"] and done["copies_failed"] == []
    with caplog.at_level(logging.INFO, logger="churnops.features.store"):
        split = load_split(copied, as_of_end=matured, params=params)
    read = [r.getMessage() for r in caplog.records if "labelled snapshots" in r.getMessage()]
    assert "as-of dates from their columnar copies, 0 from the warehouse" in read[-1], read
    loaded = {
        day for part in (split.train, split.validation, split.test) for day in part["as_of_date"]
    }
    assert len(loaded) >= 4 and loaded <= set(expected_dates)
    expected = load_split(plain, as_of_end=matured, params=params)
    for part in ("train", "validation", "test"):
        assert getattr(split, part).equals(getattr(expected, part)), part


def test_the_nightly_keeps_its_copies_current_and_drops_old_ones(history: Settings) -> None:
    from churnops.train.frame import copy_retention_days, keep_training_copies

    copied, plain = _stores(history)
    copies = copied.copies
    assert copies is not None
    params = history.train
    matured = _labelled_dates(copied)[-5]
    night = matured + dt.timedelta(days=params.label_horizon_days)
    old = matured - dt.timedelta(days=copy_retention_days(params) + 1)
    copies.write(old, "0" * 16, plain.labelled_snapshots([matured]))  # a leftover

    first = keep_training_copies(copied, night, params)
    assert first["matured_as_of_date"] == matured.isoformat()
    kept = first["copies_written"] + first["already_current"]
    assert matured.isoformat() in first["copies_written"] and first["copies_failed"] == []
    assert first["copies_removed"] >= 1 and old not in copies.as_of_dates()
    fingerprint = copied.snapshot_fingerprints([matured])[matured]
    assert copies.has(matured, fingerprint)
    assert copies.read(matured, fingerprint).equals(
        plain.labelled_snapshots([matured]), check_metadata=False
    )

    again = keep_training_copies(copied, night, params)
    assert again["copies_written"] == [] and sorted(again["already_current"]) == sorted(kept)

    # A night whose matured date has no labels yet (early history) copies nothing.
    early = keep_training_copies(copied, _labelled_dates(copied)[0], params)
    assert early["copies_written"] == []


def test_without_copies_every_read_goes_to_the_warehouse(history: Settings, tmp_path: Path) -> None:
    _, plain = _stores(history)
    assert plain.copies is None
    assert plain.keep_snapshot_copies([_labelled_dates(plain)[-1]], dt.date.min) == {
        "copies": "off"
    }
    empty = SnapshotCopies(tmp_path / "nothing-here")
    assert empty.as_of_dates() == [] and empty.remove_before(dt.date.max) == []


def test_trainings_plan_on_the_label_counts_dbt_keeps(history: Settings) -> None:
    """marts.label_counts (fct_churn_labels' post_hooks) holds each labelled date's rows
    and churners as the labels do, and the training's plan read from it is the plan
    counted from the labels themselves (what a warehouse built before it falls back to)."""
    _, plain = _stores(history)
    warehouse = plain.warehouse
    counted = warehouse.tuples(
        f"SELECT as_of_date, count(*), sum({LABEL_COLUMN}) FROM marts.fct_churn_labels "
        "GROUP BY as_of_date ORDER BY as_of_date"
    )
    kept = warehouse.tuples(
        "SELECT as_of_date, labelled_rows, churners FROM marts.label_counts ORDER BY as_of_date"
    )
    assert len(counted) > 30
    assert [(day, int(rows), int(churners)) for day, rows, churners in kept] == [
        (day, int(rows), int(churners)) for day, rows, churners in counted
    ]

    planned = plain.labelled_snapshot_rows(None, None, 7, first_whole_window_after=89)
    with warehouse.transaction() as session:
        session.execute("ALTER TABLE marts.label_counts RENAME TO label_counts_aside")
    try:
        from_labels = plain.labelled_snapshot_rows(None, None, 7, first_whole_window_after=89)
    finally:
        with warehouse.transaction() as session:
            session.execute("ALTER TABLE marts.label_counts_aside RENAME TO label_counts")
    assert len(planned) > 3
    assert planned == from_labels
