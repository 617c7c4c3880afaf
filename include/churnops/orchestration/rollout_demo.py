"""The rollout, shown in the Airflow UI (``churnops rollout-demo``, ``make rollout-demo``).

1. a ``price_increase`` history (concept drift from 2025-07-03): the first champion is
   trained on the nights before the change, then a retrain on the matured post-change
   labels beats it on the same test window and, the rollout being on, enters it;
2. the next nights' drops land and ``airflow standalone`` runs ``churn_nightly`` for each;
   every published night starts ``churn_rollout`` (the Asset ``scores_published``), with
   one night per phase: shadow -> canary -> 25 % -> the 50 % step waits for a person
   under **Browse -> Required Actions**;
3. Airflow stays up until Ctrl-C (or returns at once with ``exit_when_waiting``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from churnops.settings import Settings

Say = Callable[[str], object]

SCENARIO_START = dt.date(2025, 7, 3)
PRE_CHANGE_END = dt.date(2025, 7, 20)
# The demo's settings (an explicit value in the environment wins).
DEMO_ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "3000",
    "CHURNOPS_SIM_DAYS": "460",
    "CHURNOPS_SIM_SCENARIO": "price_increase",
    "CHURNOPS_SIM_SCENARIO_START": SCENARIO_START.isoformat(),
    "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY": "false",
    "CHURNOPS_ROLLOUT_ENABLED": "true",
    "CHURNOPS_ROLLOUT_SHADOW_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_CANARY_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_STEP_NIGHTS": "1",
}


def run_rollout_demo(
    settings: Settings,
    *,
    nights: int = 3,
    port: int | None = None,
    exit_when_waiting: bool = False,
    timeout: float = 1800.0,
    say: Say = print,
) -> str:
    """The demo (module docstring); returns the rollout's status when it stops."""
    from churnops.deployment.ops import current_rollout
    from churnops.orchestration.closed_loop import feed_off_environ, run_nights
    from churnops.orchestration.local_airflow import running_airflow
    from churnops.pipeline import bootstrap_history
    from churnops.registry import champion_version
    from churnops.retrain import retrain
    from churnops.simulate import simulate_days
    from churnops.storage import shared_files_for
    from churnops.stores import stores_for

    sim = settings.simulation
    say(
        f"== 1/3 history: {sim.customers:,} customers, {sim.history_start}..{sim.history_end}; "
        f"{sim.scenario} from {sim.effective_scenario_start}"
    )
    bootstrap_history(settings, say=say)
    features = stores_for(settings).features
    if champion_version(settings) is None:
        first = retrain(
            settings,
            features,
            actor="churnops rollout-demo",
            reason="the champion before the price change",
            as_of_end=PRE_CHANGE_END,
        )
        say(first.summary)
    state = current_rollout(settings)
    if state is None or not state.active:
        second = retrain(
            settings,
            features,
            actor="churnops rollout-demo",
            reason="retrain on the matured post-change labels",
            as_of_start=SCENARIO_START,
        )
        say(second.summary)
    state = current_rollout(settings)
    if state is None or not state.active:
        say("no rollout started (see the decision above): nothing to show")
        return "none"

    first_night = sim.history_end + dt.timedelta(days=1)
    last_night = sim.history_end + dt.timedelta(days=nights)
    simulate_days(sim, first_night, last_night, shared_files_for(settings).landing_dir)
    say(
        f"== 2/3 drops for {first_night}..{last_night} landed; Airflow runs the nights and "
        f"churn_rollout moves v{state.challenger_version} one phase a night"
    )
    with running_airflow(settings, port=port, environ=feed_off_environ()) as airflow:
        # The warehouse is read through Airflow while its tasks run (DuckDB admits one
        # process): the runs' states, and the approval the Required Actions page lists.
        run_nights(airflow, "churn_rollout", first_night, last_night, timeout=timeout, say=say)

        def waiting() -> bool:
            details = airflow.api("dags/churn_rollout/dagRuns/~/hitlDetails")
            return any(not d.get("response_received") for d in details.get("hitl_details", []))

        airflow.wait_until(waiting, timeout, "the 50% approval to wait", every=5.0)
        for run in sorted(airflow.runs("churn_rollout"), key=lambda r: str(r.get("run_id"))):
            say(f"   churn_rollout {run.get('run_id')}: {run.get('state')}")
        state = current_rollout(settings)
        seen = f"{state.phase} ({state.status})" if state else "none"
        say(
            f"== 3/3 v{state.challenger_version if state else '?'}: {seen}, waiting to enter "
            f"{state.pending_phase if state else '?'}: open {airflow.base_url} -> Browse -> "
            "Required Actions to approve or reject (admin password in "
            f"{settings.paths.airflow_home}/simple_auth_manager_passwords.json.generated)"
        )
        if not exit_when_waiting:
            say("   Airflow stays up until Ctrl-C")
            try:
                while True:
                    time.sleep(60)
            except KeyboardInterrupt:
                pass
    return seen
