"""The closed loop, end to end on this machine (``churnops loop``, ``make run``).

1. bootstrap: the simulated history is ingested and its features built; the acquisition
   campaign begins ``campaign_lead_days`` before the history ends (the champion's
   training data, whose labels matured 90 days earlier, never saw it);
2. the first champion is trained and registered (unless there is one);
3. the next nights' drops land, and real Airflow runs process them: ``airflow
   standalone`` runs a backfill of ``churn_nightly`` (ingest, validate, dbt, score,
   drift report, matured-label performance, retraining policy);
4. the policy sees the drift (tenure, invoice amounts, the campaign's channel...), emits
   ``retrain_requested`` with its reasons, and the scheduler starts ``churn_retrain`` from
   that event: a challenger is trained on the newest matured data and judged against the
   champion on the same window; the decision is recorded.

Every run stays in the Airflow metadata DB, visible later with ``make up``. The live demo
feed (``churn_source_simulator``) stays paused while the loop runs its nights and is
switched on at the end: ``make up`` then lands the next simulated day and runs its night.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churnops.settings import Settings

if TYPE_CHECKING:
    from churnops.orchestration.local_airflow import LocalAirflow

log = logging.getLogger(__name__)

Say = Callable[[str], object]
# The acquisition campaign begins this many days before the simulated history ends
# (``churnops loop --campaign-lead-days``; the live feed goes on in the same world).
DEFAULT_CAMPAIGN_LEAD_DAYS = 14


@dataclass
class LoopOutcome:
    nights: list[dt.date]
    nightly_runs: list[dict]
    retrain_runs: list[dict]
    requests: list[dict]
    seconds: dict[str, float] = field(default_factory=dict)
    # What ``then`` returned (run_closed_loop), e.g. a test's reruns in the same session.
    after: Any = None


def with_campaign(settings: Settings, lead_days: int) -> Settings:
    """The settings of the demo: the acquisition campaign starts ``lead_days`` before the
    history ends, unless a scenario (a shipped one, or a file) was chosen explicitly."""
    sim = settings.simulation
    if sim.scenario != "baseline" or sim.scenario_file is not None:
        return settings
    start = sim.history_end - dt.timedelta(days=lead_days - 1)
    return dataclasses.replace(
        settings,
        simulation=dataclasses.replace(sim, scenario="acquisition_campaign", scenario_start=start),
    )


def run_closed_loop(
    settings: Settings,
    *,
    nights: int = 2,
    campaign_lead_days: int = DEFAULT_CAMPAIGN_LEAD_DAYS,
    port: int | None = None,
    say: Say = print,
    timeout: float = 1800.0,
    then: Callable[[LocalAirflow, Settings, LoopOutcome], Any] | None = None,
) -> LoopOutcome:
    """The loop; ``then(airflow, settings, outcome)``, when given, runs last in the same
    Airflow session (the scheduler still up), its result kept in ``outcome.after``."""
    from churnops.monitor.store import RETRAIN_REQUESTS_TABLE
    from churnops.orchestration.local_airflow import running_airflow
    from churnops.pipeline import bootstrap_history
    from churnops.registry import champion_version
    from churnops.retrain import retrain
    from churnops.simulate import simulate_days
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    settings = with_campaign(settings, campaign_lead_days)
    sim = settings.simulation
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    say(
        f"== 1/4 history: {sim.customers:,} customers, {sim.history_start}..{sim.history_end}; "
        f"scenario {sim.scenario} from {sim.effective_scenario_start}"
    )
    bootstrap_history(settings, say=say)
    seconds["bootstrap"] = time.perf_counter() - began

    mark = time.perf_counter()
    if champion_version(settings) is None:
        say("== 2/4 the first champion")
        outcome = retrain(
            settings,
            stores_for(settings).features,
            actor="churnops loop",
            reason="first model (make run)",
        )
        say(outcome.summary)
    else:
        say(f"== 2/4 champion v{champion_version(settings)} is already registered")
    seconds["first_champion"] = time.perf_counter() - mark

    first = sim.history_end + dt.timedelta(days=1)
    last = sim.history_end + dt.timedelta(days=nights)
    days = [first + dt.timedelta(days=i) for i in range(nights)]
    mark = time.perf_counter()
    simulate_days(sim, first, last, shared_files_for(settings).landing_dir)
    say(f"== 3/4 drops for {first}..{last} landed; Airflow runs the nights")
    with running_airflow(settings, port=port, environ=feed_off_environ()) as airflow:
        nightly = run_nights(airflow, "churn_retrain", first, last, timeout=timeout, say=say)
        seconds["nights"] = time.perf_counter() - mark
        monitoring = stores_for(settings).monitoring
        for estimate in monitoring.estimates(since=first):
            say(
                f"   estimated performance {estimate['as_of_date']} "
                f"(v{estimate['model_version']}, from the night's scores alone): AUC "
                f"{estimate['estimated_auc']:.3f} [{estimate['estimated_auc_lower']:.3f}, "
                f"{estimate['estimated_auc_upper']:.3f}], predicted churn rate "
                f"{estimate['mean_probability']:.2%} against {estimate['base_rate']:.2%} "
                "at training"
            )
        requests = monitoring.rows(
            f"select * from {RETRAIN_REQUESTS_TABLE} where as_of_date between ? and ? "
            "order by as_of_date",
            [first, last],
        )
        for request in requests:
            verdict = (
                "FIRED"
                if request["fired"]
                else ("held (cooldown)" if request["held_by_cooldown"] else "quiet")
            )
            say(
                f"   retraining policy {request['as_of_date']}: {verdict}: "
                + "; ".join(request["reasons"])
            )
        mark = time.perf_counter()
        retrains: list[dict] = []
        if any(r["fired"] for r in requests):
            say("== 4/4 retrain_requested was emitted: waiting for churn_retrain")
            retrains = airflow.wait_for_runs(
                "churn_retrain", 1, timeout=timeout, run_id_prefix="asset_triggered__"
            )
            for run in retrains:
                say(f"   churn_retrain {run.get('run_id')}: {run.get('state')}")
        else:
            say("== 4/4 the retraining policy did not fire: no retrain")
        seconds["retrain"] = time.perf_counter() - mark
        result = LoopOutcome(days, nightly, retrains, requests, seconds)
        if then is not None:
            mark = time.perf_counter()
            result.after = then(airflow, settings, result)
            seconds["then"] = time.perf_counter() - mark
    if settings.orchestration.source_feed:
        start_the_feed(settings, say)
    seconds["total"] = time.perf_counter() - began
    return result


FEED_DAG_ID = "churn_source_simulator"


def feed_off_environ() -> dict[str, str]:
    """The environment for an Airflow session that runs nights of its own: the live demo
    feed waits for it to finish (it would land the next day and start a night beside
    them). It comes on for `make up` (:func:`start_the_feed`)."""
    return {**os.environ, "CHURNOPS_SOURCE_FEED": "false"}


def run_nights(
    airflow: LocalAirflow,
    downstream_dag: str,
    first: dt.date,
    last: dt.date,
    *,
    timeout: float,
    say: Say,
) -> list[dict[str, Any]]:
    """Backfill ``churn_nightly`` over ``first``..``last`` (their drops have landed), with
    ``downstream_dag`` (the one its assets start) unpaused too; wait for every night's run
    and say how each ended. Returns the runs."""
    dag_ids = ("churn_nightly", downstream_dag)
    airflow.wait_until(lambda: set(dag_ids) <= airflow.dag_ids(), 300, "the DAGs to be parsed")
    for dag_id in dag_ids:
        airflow.run(["dags", "unpause", dag_id], check=False)
    airflow.backfill_days("churn_nightly", first, last)
    nights = (last - first).days + 1
    nightly = airflow.wait_for_runs(
        "churn_nightly", nights, timeout=timeout, run_id_prefix="backfill__"
    )
    for run in sorted(nightly, key=lambda r: str(r.get("logical_date"))):
        say(f"   churn_nightly {run.get('logical_date')}: {run.get('state')}")
    return nightly


def start_the_feed(settings: Settings, say: Say = print) -> None:
    """Unpause the live demo feed (the loop's session created it paused), so that
    `make up` lands the next simulated day and runs its night at once."""
    from churnops.orchestration.local_airflow import LocalAirflow

    LocalAirflow(settings).run(["dags", "unpause", FEED_DAG_ID])
    say(
        f"   {FEED_DAG_ID} is on: `make up` lands the next simulated day, then one more "
        f"each day ({settings.orchestration.feed_cron}, UTC), and runs its night"
    )
