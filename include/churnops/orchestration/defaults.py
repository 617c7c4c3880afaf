"""What every churnops DAG shares: default task arguments and the run's business day."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from churnops.settings import Settings

OWNER = "ml-platform"


def default_args(settings: Settings) -> dict[str, Any]:
    """Retries with exponential backoff: a late or locked source usually heals by itself.
    A task that fails for good is announced through the alert connection (or logged)."""
    from churnops.orchestration.alerts import failure_notifier

    orch = settings.orchestration
    return {
        "on_failure_callback": failure_notifier(),
        "owner": OWNER,
        "retries": orch.retries,
        "retry_delay": dt.timedelta(minutes=orch.retry_delay_minutes),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": dt.timedelta(minutes=60),
    }


def run_day(context: Mapping[str, Any]) -> dt.date:
    """The business day D a nightly run processes.

    ``params.as_of_date`` when a person asked for a day in the trigger form, else the
    run's logical date (UTC). The nightly schedule's logical date is the start of its data
    interval, so the run after midnight processes the day that just ended, and a backfill
    over [FROM, TO] processes exactly those days.
    """
    params = context.get("params") or {}
    if params.get("as_of_date"):
        return dt.date.fromisoformat(str(params["as_of_date"]))
    logical = context.get("logical_date")
    if logical is None:
        raise ValueError(
            "this run has no logical date: trigger it with a logical date or an as_of_date"
        )
    return logical.astimezone(dt.UTC).date()


# The same rule as run_day, for templated operator fields (Cosmos' dbt vars).
RUN_DAY_TEMPLATE = "{{ params.as_of_date if params.as_of_date else ds }}"
