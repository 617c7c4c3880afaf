"""The closed loop through a real Airflow scheduler (`airflow standalone`), on a small
simulated base: the acquisition campaign shows up as drift in the first nightly run, the
retraining policy emits ``retrain_requested`` naming tenure and invoice amounts, the
scheduler starts ``churn_retrain`` from that asset event, and its decision is recorded;
the next night is held back by the cooldown.

In the same scheduler session (the suite keeps one), once the retrain is over: one more
night runs, is rerun whole as a user would (`churnops backfill --reprocess completed`,
the same as clearing the finished run in the UI), then its dbt producer and one model's
task are cleared alone. Every try of every task must succeed (no DuckDB lock error, no
retry) and the night's rows must come out as they were."""

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
    assert backfill.returncode == 0, f"churnops backfill failed: {backfill.stderr[-3000:]}"
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
            then=rerun_a_night,
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
        nights = [*outcome.nights, outcome.after.night]  # the loop's, and the rerun one
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
    assert latest.action in {"promote", "keep"} and latest.reasons
    assert latest.actor and "churn_retrain" in latest.actor
    trigger = mlflow_client(settings).get_run(latest.run_id).data.tags["trigger"]
    assert "drift on" in trigger and "tenure_days" in trigger


def test_the_status_report_shows_the_loop(loop) -> None:
    from churnops.status import collect_status, render_status

    settings, outcome, _ = loop
    report = collect_status(settings)
    assert report["last_nightly_run"]["as_of_date"] == outcome.after.night
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
    rerun = outcome.after
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
    rerun = outcome.after
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
