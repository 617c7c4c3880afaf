"""The closed loop through a real Airflow scheduler (`airflow standalone`), on a small
simulated base: the acquisition campaign shows up as drift in the first nightly run, the
retraining policy emits ``retrain_requested`` naming tenure and invoice amounts, the
scheduler starts ``churn_retrain`` from that asset event, and its decision is recorded;
the next night is held back by the cooldown."""

from __future__ import annotations

import socket

import duckdb
import pytest

from churnops.settings import load_settings

pytestmark = pytest.mark.e2e

ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "2000",
    "CHURNOPS_SIM_DAYS": "420",
    "CHURNOPS_AIRFLOW_PARALLELISM": "3",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
            settings, nights=2, campaign_lead_days=14, port=free_port(), say=lines.append
        )
        yield settings, outcome, lines
    finally:
        patch.undo()


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
        assert sorted(loaded) == [(night, 6) for night in outcome.nights]  # all six tables
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
    assert sorted(scored) == outcome.nights
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
    assert report["last_nightly_run"]["as_of_date"] == outcome.nights[-1]
    assert report["last_nightly_run"]["state"] == "scored"
    assert report["drift"]["features_drifted"] >= 3
    assert report["triggers"] and report["triggers"][0]["held_by_cooldown"]
    text = render_status(report)
    assert "Triggers fired" in text and "tenure_days" in text
    assert "Action taken" in text
