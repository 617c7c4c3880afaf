"""Feature and label tables, built by dbt (``dbt_project/``) for a range of as-of dates.

The nightly DAG runs the same project through Cosmos; this module runs it in-process for
the history bootstrap, the CLI and tests, with the same vars, so both paths write the
same rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.settings import Settings

if TYPE_CHECKING:
    from churnops.ingest.store import RawStore

log = logging.getLogger(__name__)


# Longest feature window (and the label horizon): a night needs this many days loaded.
WINDOW_DAYS = 90


class HistoryIncomplete(RuntimeError):
    """Features for a day were asked for before every day of their window was loaded."""


class DbtFailed(RuntimeError):
    """dbt reported errors or failing tests; the message names each failing node."""


@dataclass(frozen=True)
class DbtRun:
    command: str
    seconds: float
    nodes: dict[str, str]  # unique_id -> status


def dbt_env(settings: Settings) -> dict[str, str]:
    """Environment that dbt_project/profiles.yml reads (the engine's part from
    ``churnops.warehouse.dbt_profile``: for PostgreSQL the parts of its one DSN)."""
    from churnops.warehouse import dbt_profile

    return {
        **dbt_profile(settings.warehouse).env,
        "CHURNOPS_DBT_TARGET": settings.warehouse.dbt_target,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "true",
    }


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """profiles.yml reads the warehouse from the environment: set it for this dbt call only,
    so a later ``load_settings()`` in the same process never sees another run's warehouse."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def dbt_vars(start: dt.date, end: dt.date) -> dict[str, str]:
    return {"as_of_start": start.isoformat(), "as_of_end": end.isoformat()}


def run_dbt(
    settings: Settings,
    command: str,
    args: Sequence[str] = (),
    dbt_vars_: dict[str, str] | None = None,
    target_path: str | None = None,
) -> DbtRun:
    """Run ``dbt <command>`` in-process against the settings' warehouse."""
    import json

    from dbt.cli.main import dbtRunner

    from churnops.warehouse import dbt_profile

    project = str(settings.paths.dbt_project_dir)
    argv = [command, "--project-dir", project, "--profiles-dir", project]
    argv += ["--target", settings.warehouse.dbt_target]
    profile = dbt_profile(settings.warehouse)
    if profile.threads is not None:
        argv += ["--threads", str(profile.threads)]
    # Runs write their artifacts under the state dir: dbt_project/target holds only the
    # parsed manifest Cosmos renders the DAG from, and a run must never rewrite it.
    argv += ["--target-path", target_path or str(settings.paths.state_dir / "dbt" / "target")]
    argv += ["--log-path", str(settings.paths.state_dir / "dbt" / "logs")]
    if dbt_vars_:
        argv += ["--vars", json.dumps(dbt_vars_)]
    argv += list(args)
    began = time.perf_counter()
    with _environment(dbt_env(settings)):
        try:
            result = dbtRunner().invoke(argv)
        finally:
            if profile.release is not None:
                profile.release()
    seconds = time.perf_counter() - began
    nodes: dict[str, str] = {}
    failures: list[str] = []
    for node_result in getattr(result.result, "results", None) or []:
        status = str(node_result.status)
        nodes[node_result.node.unique_id] = status
        if status in {"error", "fail", "runtime error"}:
            failures.append(f"{node_result.node.unique_id}: {status}: {node_result.message}")
    if not result.success:
        detail = "; ".join(failures) or str(result.exception)
        raise DbtFailed(f"dbt {command} failed: {detail}")
    log.info("dbt %s: %d nodes in %.1fs", command, len(nodes), seconds)
    return DbtRun(command, seconds, nodes)


def build_features(
    settings: Settings, start: dt.date, end: dt.date, target_path: str | None = None
) -> DbtRun:
    """``dbt build`` (models and data tests) for as-of dates [start, end].

    dbt unit tests check SQL logic, not data: they run in the test suite, not every night.
    """
    return run_dbt(
        settings,
        "build",
        ["--exclude", "test_type:unit"],
        dbt_vars_=dbt_vars(start, end),
        target_path=target_path,
    )


def missing_window_days(
    raw: RawStore, feed_start: dt.date, day: dt.date
) -> dict[str, list[dt.date]]:
    """Per landing table, the days of D's 90-day window that are not loaded yet.

    The window starts at the feed's first day (``feed_start``, or the earliest day ever
    loaded if that is earlier) when that is later. Features built with a gap would silently
    differ from the ones an in-order run gives, so a run that finds gaps stops (and its
    retry picks up once the backfill has filled them).
    """
    from churnops.contracts import LANDING_TABLES

    window_start = day - dt.timedelta(days=WINDOW_DAYS - 1)
    first_loaded = raw.first_loaded_day()
    if first_loaded is None:  # no raw layer yet: nothing is loaded
        return {t: [day] for t in LANDING_TABLES}
    loaded = raw.loaded_days(window_start, day)
    # The window never reaches before the feed's first day (nothing exists there) nor, as a
    # safety net, before the earliest day ever loaded when the feed start is not known.
    start = max(window_start, min(feed_start, first_loaded))
    expected = {start + dt.timedelta(days=i) for i in range((day - start).days + 1)}
    have: dict[str, set[dt.date]] = {t: loaded.get(t, set()) for t in LANDING_TABLES}
    for table, days in loaded.items():
        have.setdefault(table, days)
    return {table: sorted(expected - days) for table, days in have.items() if expected - days}


def require_window_loaded(raw: RawStore, feed_start: dt.date, day: dt.date) -> None:
    """Raise :class:`HistoryIncomplete` naming the missing days, if any."""
    missing = missing_window_days(raw, feed_start, day)
    if missing:
        detail = "; ".join(
            f"{table}: {', '.join(d.isoformat() for d in days[:5])}"
            + (f" (+{len(days) - 5} more)" if len(days) > 5 else "")
            for table, days in sorted(missing.items())
        )
        raise HistoryIncomplete(
            f"features for {day} need every drop of their {WINDOW_DAYS}-day window loaded; "
            f"missing: {detail}. Run those days first (a backfill retries this one)."
        )
