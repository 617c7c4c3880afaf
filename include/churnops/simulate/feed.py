"""The live demo feed: the simulated source system goes on, one day per run.

The simulated history ends where ``make run`` left it (its last night is the history's
end plus ``--nights``), months before the real calendar's today, and a simulated day
needs the days before it (the nightly's 90-day window must be loaded). So the feed does
not jump to the real date: each run lands the day after the newest day every landing
table has, the same world the history was drawn from (its seed, its scenario), and the
nightly processes that day next (``churn_source_simulator`` starts its run).

The nightly's own schedule still runs on the real calendar (backfills need it): in the
local profile, with the feed on, a run for a day the feed cannot reach yet is skipped at
once with the reason (:func:`unreachable_by_feed`) instead of waiting hours for drops
that cannot come.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.settings import SimulationSettings

if TYPE_CHECKING:
    from churnops.storage import Location

ONE_DAY = dt.timedelta(days=1)


def newest_complete_day(landed: Iterable[Iterable[dt.date]]) -> dt.date | None:
    """The newest day every table has a drop for, from each table's landed days: the feed's
    position. None when some table has nothing yet."""
    newest: dt.date | None = None
    for days in landed:
        table_newest = max(days, default=None)
        if table_newest is None:
            return None
        newest = table_newest if newest is None else min(newest, table_newest)
    return newest


@dataclass(frozen=True)
class FeedDay:
    """What the feed lands now, and why."""

    day: dt.date
    reason: str


def feed_day(newest: dt.date | None, sim: SimulationSettings) -> FeedDay:
    """The day the feed lands on its next run: the day after ``newest`` (the newest day
    every table has landed), or the simulated history's first day on an empty landing
    area. A day some table is missing is landed again whole (a source re-sends a day)."""
    if newest is None:
        return FeedDay(
            sim.history_start, f"nothing has landed yet: the feed starts at {sim.history_start}"
        )
    if newest < sim.history_start:
        return FeedDay(
            sim.history_start,
            f"the newest landed day {newest} is before the simulated history "
            f"({sim.history_start}): the feed starts there",
        )
    return FeedDay(newest + ONE_DAY, f"the day after the newest day every table has ({newest})")


def unreachable_by_feed(
    day: dt.date, newest: dt.date | None, sim: SimulationSettings
) -> str | None:
    """Why the feed will not land ``day`` on its next run, else None: it lands one day
    per run, in order (:func:`feed_day`); a day further ahead is at least one more feed
    run, a day, away, and waiting for it would hold a nightly run for hours."""
    reach = feed_day(newest, sim).day
    if day <= reach:
        return None
    position = f"has landed up to {newest}" if newest else "has landed nothing yet"
    return (
        f"dt={day}: the simulated source feed (churn_source_simulator) {position} and "
        f"lands one day per run, in order ({reach} next): this day's drops will not come "
        "tonight. The demo's nights are the feed's days: each feed run starts the nightly "
        "for the day it landed"
    )


def landing_position(landing_dir: Location, tables: Iterable[str]) -> dt.date | None:
    """:func:`newest_complete_day` of the landing area (lists its folders)."""
    from churnops.landing import dropped_days

    return newest_complete_day(dropped_days(landing_dir, table) for table in tables)
