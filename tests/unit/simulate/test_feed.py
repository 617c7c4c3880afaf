"""Which day the live demo feed lands now, and which nightly runs it cannot serve."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.settings import SimulationSettings
from churnops.simulate.feed import (
    feed_day,
    landing_position,
    newest_complete_day,
    unreachable_by_feed,
)

pytestmark = pytest.mark.unit

SIM = SimulationSettings(customers=100, seed=1, history_start=dt.date(2025, 1, 1), history_days=30)
D = dt.date


def test_the_feed_goes_on_the_day_after_the_newest_day_every_table_has() -> None:
    landed = [[D(2025, 1, 1), D(2025, 1, 2), D(2025, 1, 3)], [D(2025, 1, 2), D(2025, 1, 1)]]
    newest = newest_complete_day(landed)
    assert newest == D(2025, 1, 2)  # the second table has not got the 3rd yet
    step = feed_day(newest, SIM)
    assert step.day == D(2025, 1, 3)  # landed whole again: a source re-sends a day
    assert "2025-01-02" in step.reason


def test_the_feed_goes_on_past_the_simulated_history_one_day_per_run() -> None:
    end = SIM.history_end
    assert feed_day(end, SIM).day == end + dt.timedelta(days=1)
    assert feed_day(end + dt.timedelta(days=40), SIM).day == end + dt.timedelta(days=41)


def test_an_empty_landing_area_starts_at_the_history_start() -> None:
    assert newest_complete_day([[], [D(2025, 1, 4)]]) is None
    assert newest_complete_day([]) is None
    for newest in (None, D(2024, 6, 1)):
        assert feed_day(newest, SIM).day == SIM.history_start


def test_only_days_past_the_feeds_next_day_are_unreachable() -> None:
    newest = D(2025, 7, 3)
    assert unreachable_by_feed(D(2025, 7, 1), newest, SIM) is None  # landed (or quarantined)
    assert unreachable_by_feed(D(2025, 7, 4), newest, SIM) is None  # the feed's next day
    reason = unreachable_by_feed(D(2026, 12, 5), newest, SIM)
    assert reason is not None
    assert (
        "dt=2026-12-05" in reason and "up to 2025-07-03" in reason and "2025-07-04 next" in reason
    )
    assert unreachable_by_feed(SIM.history_start, None, SIM) is None
    assert "has landed nothing yet" in (unreachable_by_feed(D(2025, 2, 1), None, SIM) or "")


def test_the_landing_position_is_read_from_the_drop_folders(tmp_path) -> None:
    for table, days in {"customers": (1, 2, 3), "invoices": (1, 2)}.items():
        for day in days:
            (tmp_path / table / f"dt=2025-01-0{day}").mkdir(parents=True)
    (tmp_path / "invoices" / "not-a-drop").mkdir()
    assert landing_position(tmp_path, ["customers", "invoices"]) == D(2025, 1, 2)
    assert landing_position(tmp_path, ["customers", "usage_daily"]) is None
