"""Task bodies of ``churn_source_simulator``: Airflow's side of ``churnops.simulate.feed``."""

from __future__ import annotations

import datetime as dt
import logging

from churnops.contracts import LANDING_TABLES
from churnops.settings import Settings, load_settings

log = logging.getLogger(__name__)


def feed_settings(settings: Settings) -> Settings:
    """The simulated world ``make run`` drew its history and nights from (its seed and,
    unless a scenario was chosen, the acquisition campaign the loop starts), so the feed
    goes on with the same customers."""
    from churnops.orchestration.closed_loop import DEFAULT_CAMPAIGN_LEAD_DAYS, with_campaign

    return with_campaign(settings, DEFAULT_CAMPAIGN_LEAD_DAYS)


def land_next_day() -> dict[str, str]:
    """Land every table's drop of the feed's next day; return the day (``YYYY-MM-DD``)
    and the logical date of its nightly run (:func:`nightly_logical_date`).
    Skipped, with the reason, when the feed is off (``CHURNOPS_SOURCE_FEED=false``)."""
    from airflow.sdk.exceptions import AirflowSkipException

    from churnops.orchestration import lineage
    from churnops.simulate import simulate_days
    from churnops.simulate.feed import feed_day, landing_position
    from churnops.storage import shared_files_for

    settings = load_settings()
    if not settings.orchestration.source_feed:
        raise AirflowSkipException("CHURNOPS_SOURCE_FEED is off: the feed lands nothing")
    sim = feed_settings(settings).simulation
    files = shared_files_for(settings).check()
    landing = files.landing_dir
    step = feed_day(landing_position(landing, LANDING_TABLES), sim)
    log.info("landing dt=%s under %s: %s", step.day, files.url, step.reason)
    summary = simulate_days(sim, step.day, step.day, landing)
    log.info("%s", summary)
    lineage.report(outputs=lineage.drops(files, step.day))
    logical_date = nightly_logical_date(settings, step.day)
    return {"day": step.day.isoformat(), "logical_date": logical_date.isoformat()}


def nightly_logical_date(settings: Settings, day: dt.date) -> dt.datetime:
    """The logical date the nightly's schedule gives the run of ``day``: its cron's first
    time on that day (UTC), so a run the feed starts is the run a backfill of the day
    would make, not a second one."""
    from croniter import croniter  # type: ignore[import-untyped,unused-ignore]

    midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    first = croniter(settings.orchestration.nightly_cron, midnight - dt.timedelta(seconds=1))
    when: dt.datetime = first.get_next(dt.datetime)
    return when if when.date() == day else midnight


def unreachable_night(day: dt.date) -> str | None:
    """With the feed on, why the nightly of ``day`` cannot get its drops now (see
    ``churnops.simulate.feed.unreachable_by_feed``); None otherwise."""
    from churnops.simulate.feed import landing_position, unreachable_by_feed
    from churnops.storage import shared_files_for

    settings = load_settings()
    if not settings.orchestration.source_feed:
        return None
    newest = landing_position(shared_files_for(settings).landing_dir, LANDING_TABLES)
    return unreachable_by_feed(day, newest, feed_settings(settings).simulation)
