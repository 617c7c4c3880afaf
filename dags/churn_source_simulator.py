"""
### churn_source_simulator: the live demo feed

The simulated source system, going on by itself (local profile; `CHURNOPS_SOURCE_FEED`,
now {feed_on}). On its schedule (cron `{s.orchestration.feed_cron}`, UTC) it lands one
more simulated day and starts the nightly for it:

1. `land_next_day` writes every landing table's drop `landing/<table>/dt=D/` for the day
   **D** after the newest day every table has, drawn from the same simulated world as
   the history (`CHURNOPS_SIM_*`, the campaign `make run` starts).
2. `start_the_night` triggers `churn_nightly` for D, with the logical date its schedule
   would give that day (run id `feed__D`; a night that already ran is left alone).

**Why the feed's calendar, not the real one.** The simulated history ends months before
today (`CHURNOPS_SIM_START` + `CHURNOPS_SIM_DAYS`, then `make run`'s nights), and a day
needs the 90 days before it loaded. So the demo's nights are the feed's days: one more
per feed run, processed right after it lands. The nightly keeps its own cron (backfills
use it); with the feed on, a scheduled run for a day the feed cannot reach yet (today's
real date) is skipped at once by `wait_for_drops`, with the reason, instead of waiting
{s.orchestration.drop_wait_minutes} minutes for drops that cannot come.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task

from churnops.orchestration.defaults import default_args
from churnops.settings import load_settings

settings = load_settings()
orchestration = settings.orchestration
LANDED = "ti.xcom_pull(task_ids='land_next_day')"


@task
def land_next_day() -> dict[str, str]:
    """Land the feed's next simulated day; return it and its nightly's logical date."""
    from churnops.orchestration.feed import land_next_day

    return land_next_day()


@dag(
    dag_id="churn_source_simulator",
    schedule=orchestration.feed_cron,
    start_date=dt.datetime.combine(orchestration.nightly_start, dt.time(), tzinfo=dt.UTC),
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=not orchestration.source_feed,
    default_args=default_args(settings),
    tags=["churnops", "demo", "source", "simulation"],
    doc_md=__doc__.format(s=settings, feed_on="on" if orchestration.source_feed else "off"),
)
def churn_source_simulator() -> None:
    land_next_day() >> TriggerDagRunOperator(
        task_id="start_the_night",
        trigger_dag_id="churn_nightly",
        trigger_run_id="feed__{{ " + LANDED + "['day'] }}",
        logical_date="{{ " + LANDED + "['logical_date'] }}",
        skip_when_already_exists=True,
    )


churn_source_simulator()
