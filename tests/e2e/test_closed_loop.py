"""The closed loop through a real Airflow scheduler (`airflow standalone`), on a small
simulated base: the acquisition campaign shows up as drift in the first nightly run, the
retraining policy emits ``retrain_requested`` naming tenure and invoice amounts, the
scheduler starts ``churn_retrain`` from that asset event, and its decision is recorded;
the next night is held back by the cooldown.

In the same scheduler session (the suite keeps one), once the retrain is over: one more
night runs, is rerun whole as a user would (`churnops backfill --reprocess completed`,
the same as clearing the finished run in the UI), then its dbt producer and one model's
task are cleared alone. Every try of every task must succeed (no DuckDB lock error, no
retry) and the night's rows must come out as they were.

Then the retrain's kept version enters the phased rollout by hand (`churnops rollout
start`), with one night per phase, and one more night runs: the scheduler starts
``churn_rollout`` from the night's ``scores_published`` event, and it moves the rollout
from the shadow to the canary, which the next scoring serves. (Each phase after that is
the same step; tests/e2e/test_rollout_dag.py walks them all with ``dag.test()``.)"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from churnops.settings import load_settings

pytestmark = pytest.mark.e2e

ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "2000",
    "CHURNOPS_SIM_DAYS": "420",
    "CHURNOPS_AIRFLOW_PARALLELISM": "3",
    # One night per rollout phase: the session walks a rollout after the rerun.
    "CHURNOPS_ROLLOUT_SHADOW_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_CANARY_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_STEP_NIGHTS": "1",
}


# Columns that say when a row was written, not what it holds: a rerun renews them.
WRITE_TIMES = {"_loaded_at", "loaded_at", "scored_at", "computed_at", "evaluated_at", "seconds"}
LOCK_ERROR = "Could not set lock"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(value: object) -> str:
    # 12 significant digits: a rerun's parallel float sums may differ in the last bit.
    return f"{value:.12g}" if isinstance(value, float) else repr(value)


def night_tables(settings, night: dt.date) -> dict[str, list[tuple] | None]:
    """Every row the nightly writes for ``night`` (raw partitions, marts, predictions,
    drift, the retraining request), without write times, in a stable order; and the row
    count of every marts as-of date, so a rerun that touched another night shows too."""
    from churnops.contracts import LANDING_TABLES
    from churnops.warehouse import MissingTable, build_warehouse

    labels_day = night - dt.timedelta(days=90)  # the labels whose window closes tonight
    queries: dict[str, tuple[str, list]] = {
        f"raw.{table}": (f"select * from raw.{table} where _drop_date = ?", [night])
        for table in LANDING_TABLES
    }
    queries |= {
        "raw._loaded_drops": ("select * from raw._loaded_drops where drop_date = ?", [night]),
        "marts.fct_customer_features": (
            "select * from marts.fct_customer_features where as_of_date = ?",
            [night],
        ),
        "marts.fct_churn_labels": (
            "select * from marts.fct_churn_labels where as_of_date = ?",
            [labels_day],
        ),
        "marts rows per as_of_date": (
            "select 'features' as mart, as_of_date, count(*) as n "
            "from marts.fct_customer_features group by 1, 2 union all "
            "select 'labels', as_of_date, count(*) from marts.fct_churn_labels group by 1, 2",
            [],
        ),
        "monitoring.cohort_performance": ("select * from monitoring.cohort_performance", []),
    }
    for table in (
        "scoring.predictions",
        "scoring.shadow_predictions",
        "monitoring.feature_drift",
        "monitoring.drift_summary",
        "monitoring.retrain_requests",
    ):
        queries[table] = (f"select * from {table} where as_of_date = ?", [night])
    warehouse = build_warehouse(settings.warehouse, read_only=True)
    tables: dict[str, list[tuple] | None] = {}
    try:
        for name, (sql, params) in queries.items():
            try:
                rows = warehouse.rows(sql, params)
            except MissingTable:
                tables[name] = None
                continue
            tables[name] = sorted(
                tuple((k, _value(v)) for k, v in sorted(row.items()) if k not in WRITE_TIMES)
                for row in rows
            )
        tables["scoring.scoring_runs (append-only log)"] = [
            (
                str(
                    len(
                        warehouse.rows(
                            "select * from scoring.scoring_runs where as_of_date = ?", [night]
                        )
                    )
                ),
            )
        ]
    finally:
        warehouse.dispose()
    return tables


@dataclass
class Rerun:
    night: dt.date
    run_id: str
    first_state: str
    before: dict
    after_rerun: dict
    after_clear: dict
    rerun_state: str
    clear_state: str
    tries: dict[str, list[dict]]
    cleared: list[str]
    lock_errors: list[str]
    seconds: dict[str, float]


def _run_of(airflow, night: dt.date) -> dict:
    return next(
        r
        for r in airflow.runs("churn_nightly")
        if str(r.get("logical_date", "")).startswith(night.isoformat())
    )


def _wait_until_finished_after(airflow, night: dt.date, mark: dt.datetime) -> dict:
    """The night's run once it has finished again, after ``mark``."""

    def finished() -> bool:
        run = _run_of(airflow, night)
        end = run.get("end_date")
        return (
            run.get("state") in {"success", "failed"}
            and bool(end)
            and dt.datetime.fromisoformat(str(end)) > mark
        )

    airflow.wait_until(finished, 1200, f"the run of {night} to finish again", every=5.0)
    return _run_of(airflow, night)


def _wait_for_backfills_done(airflow) -> None:
    """Airflow runs one backfill per DAG at a time; the scheduler closes a finished one
    a moment after its last run ends."""
    airflow.wait_until(
        lambda: all(
            b.get("completed_at")
            for b in airflow.api("backfills?dag_id=churn_nightly&limit=100")["backfills"]
        ),
        120,
        "the earlier backfills to be closed",
    )


def rerun_a_night(airflow, settings, outcome) -> Rerun:
    """After the loop (the registry no longer moves): one more night, then that night run
    again whole, then its producer and one model's task cleared alone."""
    from churnops.simulate import simulate_days

    seconds: dict[str, float] = {}
    night = outcome.nights[-1] + dt.timedelta(days=1)
    simulate_days(settings.simulation, night, night, settings.paths.landing_dir)
    _wait_for_backfills_done(airflow)
    began = time.perf_counter()
    airflow.backfill_days("churn_nightly", night, night)
    airflow.wait_for_runs(
        "churn_nightly", len(outcome.nights) + 1, timeout=1200, run_id_prefix="backfill__"
    )
    seconds["night"] = time.perf_counter() - began
    first = _run_of(airflow, night)
    before = night_tables(settings, night)

    # The command, as a user types it next to the running scheduler.
    _wait_for_backfills_done(airflow)
    mark = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    churnops = Path(sys.executable).with_name("churnops")
    day = night.isoformat()
    backfill = subprocess.run(
        [
            str(churnops),
            "backfill",
            "--from-date",
            day,
            "--to-date",
            day,
            "--reprocess",
            "completed",
        ],
        env={**os.environ, "CHURNOPS_AIRFLOW_PORT": airflow.env["AIRFLOW__API__PORT"]},
        check=False,
        capture_output=True,
        text=True,
    )
    # Its first lines too: they say what the first try met (a lost lock, and what it left).
    said = (
        backfill.stderr
        if len(backfill.stderr) < 5000
        else (f"{backfill.stderr[:2000]}\n[...]\n{backfill.stderr[-3000:]}")
    )
    assert backfill.returncode == 0, f"churnops backfill failed: {said}"
    rerun = _wait_until_finished_after(airflow, night, mark)
    seconds["rerun"] = time.perf_counter() - began
    after_rerun = night_tables(settings, night)

    # A retry of single features tasks: the dbt producer and one model's task, cleared
    # alone (no downstream), as in the UI.
    mark = dt.datetime.now(dt.UTC)
    began = time.perf_counter()
    run_id = str(first["run_id"])
    retried = ["features.dbt_producer_watcher", "features.fct_customer_features.run"]
    cleared_tis = airflow.clear_tasks("churn_nightly", run_id, retried)
    cleared = _wait_until_finished_after(airflow, night, mark)
    seconds["clear"] = time.perf_counter() - began
    after_clear = night_tables(settings, night)

    logs = settings.paths.airflow_home / "logs" / "dag_id=churn_nightly" / f"run_id={run_id}"
    lock_errors = [
        str(path)
        for path in logs.glob("**/*.log")
        if LOCK_ERROR in path.read_text(errors="replace")
    ]
    return Rerun(
        night=night,
        run_id=run_id,
        first_state=str(first["state"]),
        before=before,
        after_rerun=after_rerun,
        after_clear=after_clear,
        rerun_state=str(rerun["state"]),
        clear_state=str(cleared["state"]),
        tries=airflow.task_tries("churn_nightly", run_id),
        cleared=sorted(ti["task_id"] for ti in cleared_tis),
        lock_errors=lock_errors,
        seconds=seconds,
    )


@dataclass
class RolloutWalk:
    started: subprocess.CompletedProcess[str]
    night: dt.date
    nightly_state: str
    rollout_runs: list[dict]  # churn_rollout's runs the night's event started
    history: list[dict]  # ops.rollout_history of the rollout, oldest first
    canary_rows: int  # the night's customers served the challenger
    plan_lines: list[str]  # the score task's "scoring plan ... serves ..." line
    next_share: float  # what the next scoring serves the challenger


@dataclass
class AfterTheLoop:
    rerun: Rerun
    rollout: RolloutWalk


def _finished(airflow, dag_id: str, prefix: str) -> list[dict]:
    return [
        r
        for r in airflow.runs(dag_id)
        if str(r.get("run_id")).startswith(prefix) and r.get("state") in {"success", "failed"}
    ]


def walk_a_rollout(airflow, settings, night_before: dt.date) -> RolloutWalk:
    """The retrain's kept version (v2) enters the rollout through the CLI; one night
    through the scheduler, whose churn_rollout run (started by the night's
    scores_published event) moves the rollout on."""
    from churnops.deployment.ops import rollout_store
    from churnops.simulate import simulate_days
    from churnops.warehouse import build_warehouse

    night = night_before + dt.timedelta(days=1)
    simulate_days(settings.simulation, night, night, settings.paths.landing_dir)
    # The rerun's own churn_rollout run (no rollout then) may still hold the warehouse.
    airflow.wait_until(
        lambda: all(r.get("state") in {"success", "failed"} for r in airflow.runs("churn_rollout")),
        600,
        "churn_rollout's earlier runs to finish",
    )
    churnops = Path(sys.executable).with_name("churnops")
    started = subprocess.run(
        [str(churnops), "rollout", "start", "2", "--reason", "e2e: through the scheduler"]
        + ["--date", night.isoformat()],
        check=False,
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stderr
    nightly_before = len(_finished(airflow, "churn_nightly", "backfill__"))
    rollouts_before = {r["run_id"] for r in _finished(airflow, "churn_rollout", "asset")}
    _wait_for_backfills_done(airflow)
    airflow.backfill_days("churn_nightly", night, night)
    airflow.wait_for_runs("churn_nightly", nightly_before + 1, 1200, "backfill__")
    airflow.wait_for_runs("churn_rollout", len(rollouts_before) + 1, 600, "asset")
    rollout_runs = [
        r
        for r in _finished(airflow, "churn_rollout", "asset")
        if r["run_id"] not in rollouts_before
    ]
    warehouse = build_warehouse(settings.warehouse, read_only=True)
    try:
        store = rollout_store(settings, warehouse)
        name = settings.mlflow.registered_model_name
        rollout = store.current(name)
        assert rollout is not None
        history = store.history(name, rollout.rollout_id)
        canary_rows = int(
            warehouse.rows(
                "select canary_rows from scoring.scoring_runs where as_of_date = ? "
                "order by finished_at desc limit 1",
                [night],
            )[0]["canary_rows"]
        )
        next_share = store.share_of(settings.rollout, name, "2")
    finally:
        warehouse.dispose()
    run = _run_of(airflow, night)
    logs = settings.paths.airflow_home / "logs" / "dag_id=churn_nightly" / f"run_id={run['run_id']}"
    plan_lines = [
        line
        for path in logs.glob("**/*.log")
        for line in path.read_text(errors="replace").splitlines()
        if f"scoring plan for {night}" in line
    ]
    return RolloutWalk(
        started,
        night,
        str(run["state"]),
        rollout_runs,
        history,
        canary_rows,
        plan_lines,
        next_share,
    )


def after_the_loop(airflow, settings, outcome) -> AfterTheLoop:
    rerun = rerun_a_night(airflow, settings, outcome)
    return AfterTheLoop(rerun, walk_a_rollout(airflow, settings, rerun.night))


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory):
    from churnops.orchestration.closed_loop import run_closed_loop

    state = tmp_path_factory.mktemp("closed-loop")
    # The Airflow task processes read their settings from the environment.
    patch = pytest.MonkeyPatch()
    for name, value in {**ENV, "CHURNOPS_STATE_DIR": str(state)}.items():
        patch.setenv(name, value)
    try:
        settings = load_settings()
        lines: list[str] = []
        outcome = run_closed_loop(
            settings,
            nights=2,
            campaign_lead_days=14,
            port=free_port(),
            say=lines.append,
            then=after_the_loop,
        )
        yield settings, outcome, lines
    finally:
        patch.undo()


def test_every_night_has_its_performance_estimated_through_the_scheduler(loop) -> None:
    """The nightly DAG's monitoring task estimated each night (CBPE) and the loop says it."""
    settings, outcome, lines = loop
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as con:
        estimated = dict(
            con.execute(
                "select as_of_date, estimated_auc from monitoring.performance_estimates"
            ).fetchall()
        )
    assert set(outcome.nights) <= set(estimated), estimated
    for night in outcome.nights:
        assert 0.5 < estimated[night] < 1.0
        said = [line for line in lines if line.startswith(f"   estimated performance {night} ")]
        assert len(said) == 1 and f"AUC {estimated[night]:.3f} [" in said[0], lines


def test_both_nights_ran_through_the_scheduler_and_scored_everyone(loop) -> None:
    """`airflow backfill create` over the nights, executed by the real scheduler with
    Cosmos' watcher tasks: each night loaded its drops, built its features, scored."""
    settings, outcome, lines = loop
    assert [r["state"] for r in outcome.nightly_runs] == ["success", "success"], lines
    assert all(r["run_id"].startswith("backfill__") for r in outcome.nightly_runs)
    # The backfill keeps the DAG's max_active_runs (1): the nights ran in date order, so
    # each night's retraining policy saw the nights before it.
    by_date = sorted(outcome.nightly_runs, key=lambda r: str(r["logical_date"]))
    assert str(by_date[0]["end_date"]) <= str(by_date[1]["start_date"]), by_date
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as con:
        loaded = con.execute(
            "select drop_date, count(*) from raw._loaded_drops where drop_date >= ? group by 1",
            [outcome.nights[0]],
        ).fetchall()
        # The loop's, the rerun one and the rollout's.
        nights = [*outcome.nights, outcome.after.rerun.night, outcome.after.rollout.night]
        assert sorted(loaded) == [(night, 6) for night in nights]  # all six tables
        scored = dict(
            con.execute(
                "select as_of_date, count(*) from scoring.predictions group by 1"
            ).fetchall()
        )
        features = dict(
            con.execute(
                "select as_of_date, count(*) from marts.fct_customer_features "
                "where as_of_date in (select as_of_date from scoring.predictions) group by 1"
            ).fetchall()
        )
    assert sorted(scored) == nights
    assert scored == features  # one prediction per active customer, every night


def test_the_campaign_fires_the_trigger_naming_tenure_and_invoice_amounts(loop) -> None:
    settings, outcome, lines = loop
    first, second = outcome.requests
    assert first["fired"], first
    drift_reason = next(r for r in first["reasons"] if r.startswith("drift on"))
    assert "tenure_days" in drift_reason and "avg_invoice_amount_90d_eur" in drift_reason
    # One drift episode, one retrain: the next night is held back by the cooldown.
    assert second["triggered"] and not second["fired"] and second["held_by_cooldown"]
    report = settings.paths.reports_dir / "drift" / first["as_of_date"].isoformat() / "v1"
    assert (report / "report.html").stat().st_size > 10_000
    assert (report / "report.json").exists()


def test_the_asset_event_started_the_retrain_and_its_decision_is_recorded(loop) -> None:
    settings, outcome, lines = loop
    assert len(outcome.retrain_runs) >= 1, lines
    run = outcome.retrain_runs[0]
    assert run["run_id"].startswith("asset_triggered__") and run["state"] == "success", run

    from churnops.registry import read_decisions
    from churnops.registry.tracking import mlflow_client

    decisions = read_decisions(settings)  # newest first
    assert len(decisions) == 2  # the first champion, then the retrain's decision
    latest = decisions[0]
    assert latest.champion_version == "1" and latest.challenger_version == "2"
    assert latest.action in {"rollout", "keep"} and latest.reasons
    assert latest.actor and "churn_retrain" in latest.actor
    trigger = mlflow_client(settings).get_run(latest.run_id).data.tags["trigger"]
    assert "drift on" in trigger and "tenure_days" in trigger

    # The campaign's customers have no matured label yet: the drift night schedules the
    # follow-up retrain, and a retrain that stays back says when it comes (one that goes
    # on into the rollout does not need to).
    from churnops.stores import stores_for

    [follow_up] = [
        row
        for row in stores_for(settings).monitoring.follow_ups()
        if row["requested_on"] == outcome.nights[0]
    ]
    # With the request's count of the drifted customers' matured labels ("N of the M").
    note = f"have one): follow-up retrain on {follow_up['due_on']}"
    assert (note in latest.reasons[-1]) is (latest.action == "keep"), latest.reasons


def test_the_status_report_shows_the_loop(loop) -> None:
    from churnops.status import collect_status, render_status

    settings, outcome, _ = loop
    report = collect_status(settings)
    assert report["last_nightly_run"]["as_of_date"] == outcome.after.rollout.night
    assert report["last_nightly_run"]["state"] == "scored"
    assert report["drift"]["features_drifted"] >= 3
    assert report["triggers"] and report["triggers"][0]["held_by_cooldown"]
    text = render_status(report)
    assert "Triggers fired" in text and "tenure_days" in text
    assert "Action taken" in text


def test_a_rerun_night_and_retried_features_tasks_succeed_on_every_try(loop) -> None:
    """`churnops backfill --reprocess completed` clears the finished night: every task on
    try 2, where Cosmos' producer would skip and each model's task run dbt itself (five
    of them failing at once on DuckDB's file lock). Here the producer builds again in
    the warehouse pool and the model tasks mirror it; clearing the producer and one
    model's task alone works the same way. No try fails, none is retried."""
    settings, outcome, lines = loop
    rerun = outcome.after.rerun
    assert (rerun.first_state, rerun.rerun_state, rerun.clear_state) == ("success",) * 3, lines
    assert rerun.lock_errors == []
    assert rerun.cleared == ["features.dbt_producer_watcher", "features.fct_customer_features.run"]
    states = {task: [t["state"] for t in tries] for task, tries in rerun.tries.items()}
    assert all(set(s) <= {"success", "skipped"} for s in states.values()), states
    producer = "features.dbt_producer_watcher"
    # The original try, the rerun's, the clear's: each one built (none skipped).
    assert states[producer] == ["success"] * 3, states[producer]
    assert states["features.fct_customer_features.run"] == ["success"] * 3
    # Every other task ran once more for the rerun, and no try was a retry.
    for task, tries in rerun.tries.items():
        if task not in {producer, "features.fct_customer_features.run"}:
            assert len(tries) <= 2, (task, tries)
    assert len(states) >= 30


def test_the_rerun_and_the_retries_leave_the_nights_rows_as_they_were(loop) -> None:
    settings, outcome, _ = loop
    rerun = outcome.after.rerun
    before = rerun.before
    # The night wrote something everywhere it should (a comparison of empty tables
    # would prove nothing).
    for table in (
        "raw.usage_daily",
        "raw._loaded_drops",
        "marts.fct_customer_features",
        "marts.fct_churn_labels",
        "scoring.predictions",
        "monitoring.feature_drift",
        "monitoring.drift_summary",
        "monitoring.retrain_requests",
    ):
        assert before[table], table
    log = "scoring.scoring_runs (append-only log)"
    # The scoring run log is append-only: one more attempt recorded by the rerun, none by
    # the features-only clear.
    assert int(rerun.after_rerun[log][0][0]) == int(before[log][0][0]) + 1
    assert rerun.after_clear[log] == rerun.after_rerun[log]
    for name, after in (("rerun", rerun.after_rerun), ("clear", rerun.after_clear)):
        changed = [t for t in before if t != log and after[t] != before[t]]
        assert changed == [], f"the {name} changed {changed}"


def test_each_nights_lineage_names_its_drops_feature_build_and_model_version(loop) -> None:
    """The OpenLineage events the scheduler's tasks wrote (the local profile's file
    transport) answer, for each night, which drops, which dbt build (Cosmos' producer)
    and which model version produced its predictions."""
    from churnops.contracts import LANDING_TABLES
    from churnops.lineage import night_lineage

    settings, outcome, lines = loop
    with duckdb.connect(str(settings.warehouse.duckdb_path), read_only=True) as con:
        served = dict(
            con.execute(
                "select as_of_date, min(model_version) from scoring.predictions group by 1"
            ).fetchall()
        )
    for night in [*outcome.nights, outcome.after.rerun.night]:
        lineage = night_lineage(settings, night)
        assert lineage is not None, night
        assert len(lineage.drops) == len(LANDING_TABLES), lineage.drops
        assert all(drop.endswith(f"dt={night}") for drop in lineage.drops), lineage.drops
        assert set(lineage.raw_tables) == {f"raw.{table}" for table in LANDING_TABLES}
        assert lineage.model_versions[:1] == (str(served[night]),), lineage
        assert lineage.predictions[0] == "scoring.predictions", lineage
        build = lineage.feature_build
        assert build is not None and "features.dbt_producer_watcher" in build.tasks, lineage
        assert {"marts.fct_customer_features", "marts.fct_churn_labels"} <= set(build.models)
        closed = {t.task_id for t in lineage.tasks if t.state == "COMPLETE"}
        started = {t.task_id for t in lineage.tasks if t.state == "START"}
        assert closed == started, started ^ closed
        assert {
            "ingest.validate_and_load",
            "score.publish",
            "monitor.drift_and_performance",
        } <= closed


def test_the_retrain_and_the_model_tasks_lineage(loop) -> None:
    """The retrain's event names the features it trained on, the champion it was judged
    against and the version it registered; each per-model dbt task names its model."""
    from churnops.lineage import events_file, read_events

    settings, outcome, _ = loop
    closing: dict[str, list[dict]] = {}
    for event in read_events(events_file(settings)):
        if event["eventType"] == "COMPLETE":
            closing.setdefault(event["job"]["name"], []).append(event)
    (retrain,) = closing["churn_retrain.retrain_and_decide"]
    inputs = {d["name"] for d in retrain["inputs"]}
    assert {"warehouse.marts.fct_customer_features", "models:/churn/1"} <= inputs, inputs
    assert [d["name"] for d in retrain["outputs"]] == ["models:/churn/2"]
    for event in closing["churn_nightly.features.fct_customer_features.run"]:
        assert [d["name"] for d in event["inputs"]] == ["warehouse.marts.fct_customer_features"]


def test_the_scheduler_moves_a_rollout_started_by_hand_after_the_night(loop) -> None:
    """Issue 15 through the scheduler: `churnops rollout start 2`, then the night's
    published scores start churn_rollout (Asset scores_published), whose gates pass and
    move the rollout from the shadow (which served nobody, as the score task's log says)
    to the canary: the next scoring serves the challenger its share."""
    settings, outcome, lines = loop
    walk = outcome.after.rollout
    assert "v2 enters the rollout against champion v1: shadow" in walk.started.stdout
    assert walk.nightly_state == "success", lines
    assert len(walk.rollout_runs) == 1 and walk.rollout_runs[0]["state"] == "success"
    moves = [(e["as_of_date"], e["action"], e["phase"], e["status"]) for e in walk.history]
    said = [(e["action"], e["reasons"], e["evidence"]) for e in walk.history]
    assert moves[0] == (walk.night, "start", "shadow", "running"), said
    assert [(m[0], m[2]) for m in moves[1:]] == [(walk.night, "canary")], said
    gates = {g["name"]: g["status"] for g in walk.history[1]["evidence"]}
    assert {"scoring", "scores", "estimated_performance", "ab_readout"} <= set(gates), gates
    assert "fail" not in gates.values(), said
    assert walk.canary_rows == 0  # the shadow serves nobody
    assert any("serves v1 to every customer" in line for line in walk.plan_lines), walk.plan_lines
    assert walk.next_share == settings.rollout.canary_share > 0


def test_the_live_feed_waited_for_the_loop_and_is_on_for_make_up(loop) -> None:
    """The feed would land a day and start a night beside the loop's own: the loop's
    session keeps it paused, without a run, and switches it on at the end."""
    import sqlite3

    settings, _, lines = loop
    con = sqlite3.connect(settings.paths.airflow_home / "airflow.db")
    try:
        paused = con.execute(
            "select is_paused from dag where dag_id = 'churn_source_simulator'"
        ).fetchall()
        runs = con.execute(
            "select count(*) from dag_run where dag_id = 'churn_source_simulator'"
        ).fetchone()[0]
    finally:
        con.close()
    assert paused == [(0,)] and runs == 0
    assert any("churn_source_simulator is on" in line for line in lines), lines
