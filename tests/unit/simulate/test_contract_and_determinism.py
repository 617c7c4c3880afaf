"""The simulator writes exactly what the landing contract says, deterministically."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from churnops.contracts import LANDING_TABLES
from churnops.landing import drop_files, dropped_days
from churnops.settings import SimulationSettings
from churnops.simulate import simulate_days
from tests.conftest import SMALL_START

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("table", sorted(LANDING_TABLES))
def test_every_drop_matches_its_contract(small_landing: Path, table: str) -> None:
    contract = LANDING_TABLES[table]
    days = dropped_days(small_landing, table)
    assert len(days) == 21
    total = 0
    for day in days:
        (path,) = drop_files(small_landing, table, day)
        data = pq.read_table(path)
        assert data.schema.equals(contract.arrow_schema()), f"{table} {day} schema"
        total += data.num_rows
        if data.num_rows == 0:
            continue
        key = data.select(list(contract.primary_key)).to_pandas()
        assert not key.duplicated().any(), f"{table} {day}: duplicate keys"
        for spec in contract.columns:
            column = data.column(spec.name)
            if not spec.nullable:
                assert column.null_count == 0, f"{table}.{spec.name} has nulls"
            if spec.allowed_values is not None:
                assert set(column.to_pylist()) <= set(spec.allowed_values), spec.name
            if spec.min_value is not None:
                assert pc.min(column).as_py() >= spec.min_value, spec.name
            if spec.max_value is not None:
                assert pc.max(column).as_py() <= spec.max_value, spec.name
        event = data.column(contract.event_date_column).to_pandas()
        event_days = set(event.dt.date) if hasattr(event, "dt") else set(event)
        assert event_days == {day}, f"{table} {day}: rows dated {event_days}"
    if table in {"customers", "usage_daily", "invoices", "support_tickets", "payments"}:
        assert total > 0, f"{table} never had a row in 21 days"


def test_first_day_sends_the_base_as_snapshot(small_landing: Path, small_sim) -> None:
    first = pq.read_table(drop_files(small_landing, "customers", SMALL_START)[0]).to_pandas()
    snapshot = first[first.change_type == "snapshot"]
    assert len(snapshot) > 0.95 * small_sim.customers
    assert (snapshot.signup_date < SMALL_START).all()
    later = pq.read_table(
        drop_files(small_landing, "customers", SMALL_START + dt.timedelta(days=5))[0]
    ).to_pandas()
    assert "snapshot" not in set(later.change_type)


def test_active_customers_have_usage_until_they_churn(small_landing: Path) -> None:
    day = SMALL_START + dt.timedelta(days=10)
    churned = pq.read_table(drop_files(small_landing, "churn_events", day)[0]).column("customer_id")
    usage_today = pq.read_table(drop_files(small_landing, "usage_daily", day)[0])
    usage_before = pq.read_table(
        drop_files(small_landing, "usage_daily", day - dt.timedelta(days=1))[0]
    )
    churned_ids = set(churned.to_pylist())
    assert churned_ids, "expected some churn on a 2,000-customer day"
    assert churned_ids <= set(usage_before.column("customer_id").to_pylist())
    assert not churned_ids & set(usage_today.column("customer_id").to_pylist())


def _read_all(root: Path, table: str, day: dt.date):
    return pq.read_table(drop_files(root, table, day)[0])


def test_same_seed_same_drops_whatever_the_range(tmp_path: Path, small_sim, small_landing) -> None:
    """A day generated on its own equals the same day inside a longer run."""
    day = SMALL_START + dt.timedelta(days=17)
    simulate_days(small_sim, day, day, tmp_path)
    for table in LANDING_TABLES:
        assert _read_all(tmp_path, table, day).equals(_read_all(small_landing, table, day)), table


def test_another_seed_gives_other_data(tmp_path: Path, small_sim, small_landing) -> None:
    other = SimulationSettings(
        customers=small_sim.customers, seed=small_sim.seed + 1, history_start=SMALL_START
    )
    simulate_days(other, SMALL_START, SMALL_START, tmp_path, tables=["usage_daily"])
    mine = _read_all(small_landing, "usage_daily", SMALL_START).column("calls").to_numpy()
    theirs = _read_all(tmp_path, "usage_daily", SMALL_START).column("calls").to_numpy()
    assert len(mine) != len(theirs) or not np.array_equal(mine, theirs)


def test_rerun_replaces_a_drop_instead_of_adding_files(tmp_path: Path, small_sim) -> None:
    for _ in range(2):
        simulate_days(small_sim, SMALL_START, SMALL_START, tmp_path, tables=["invoices"])
    assert len(drop_files(tmp_path, "invoices", SMALL_START)) == 1
    assert not [p for p in (tmp_path / "invoices").iterdir() if p.name.startswith(".")]


def test_days_before_the_feed_are_refused(tmp_path: Path, small_sim) -> None:
    with pytest.raises(ValueError, match="before the feed's first day"):
        simulate_days(small_sim, SMALL_START - dt.timedelta(days=1), SMALL_START, tmp_path)
