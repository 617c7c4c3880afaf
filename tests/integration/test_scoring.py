"""Nightly scoring on a real warehouse and a real MLflow registry: one row per active
customer, idempotent nights, shadow scores exactly when a challenger exists, a stable
canary, reason codes for the top band, the no-champion skip, and atomic partitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from churnops.score import ScoringResult
from churnops.settings import Settings, load_settings
from churnops.stores import stores_for
from churnops.warehouse import ConstraintViolation
from tests.helpers import canary_rollout, warehouse_of
from tests.trained_state import trained_state

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = trained_state(tmp_path_factory.mktemp("scoring"))
    # A second version for the challenger alias: the same data, so the policy keeps v1
    # and v2 becomes the challenger.
    from churnops.retrain import retrain

    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor="pytest",
        reason="challenger",
        require_approval=True,
    )
    assert outcome.action in {"keep", "await_approval"}
    _set_challenger(settings, None)
    return settings


def _set_challenger(settings: Settings, version: str | None) -> None:
    from churnops.registry.tracking import mlflow_client

    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    if version is None:
        client.delete_registered_model_alias(name, "challenger")
    else:
        client.set_registered_model_alias(name, "challenger", version)


def _rows(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    # The pipeline's own warehouse resource (read-write: in-process dbt keeps a read-write
    # handle on the DuckDB file).
    return warehouse_of(settings).tuples(sql, params or [])


def _score_night(settings: Settings, night: dt.date) -> ScoringResult:
    """``score_day`` on the stores of ``settings``, as the nightly scoring task calls it."""
    from churnops.score import score_day

    stores = stores_for(settings)
    return score_day(settings, stores.features, stores.scoring, night)


def _night(settings: Settings) -> dt.date:
    return settings.simulation.history_end


def _predictions(settings: Settings, night: dt.date) -> list[tuple]:
    return _rows(
        settings,
        "select customer_id, churn_probability, risk_band, model_version, served_by, "
        "reason_codes from scoring.predictions where as_of_date = ? order by customer_id",
        [night],
    )


def test_every_active_customer_gets_exactly_one_prediction(settings: Settings) -> None:
    from churnops.registry import load_champion

    night = _night(settings)
    result = _score_night(settings, night)
    assert result.state == "scored"
    active = _rows(
        settings,
        "select customer_id from marts.fct_customer_features where as_of_date = ? "
        "order by customer_id",
        [night],
    )
    scored = [(row[0],) for row in _predictions(settings, night)]
    assert scored == active
    assert result.rows_scored == len(active) > 1_500
    probabilities = [row[1] for row in _predictions(settings, night)]
    assert 0.04 < sum(probabilities) / len(probabilities) < 0.14  # around the 8 % base rate
    assert {row[3] for row in _predictions(settings, night)} == {"1"}
    # This machine has gcc: the champion's trees were compiled (once, into the state dir)
    # and scored exactly what the registered booster scores.
    assert result.engine == "compiled" and "compiled trees" in result.message
    # The reasons' SHAP values came from the fast TreeSHAP (it agreed with LightGBM's).
    assert result.reason_methods == ["treeshap"] and "(treeshap)" in result.message
    assert list(settings.paths.compiled_models_dir.glob("churn-v1-*.so"))
    from churnops.score.nightly import read_night_features

    features = read_night_features(stores_for(settings).features, night)
    expected = load_champion(settings).predict(features.to_pandas())
    assert max(abs(a - b) for a, b in zip(probabilities, expected, strict=True)) <= 1e-9
    # The max_f1 champion's operating point: contacted when the score reaches its threshold.
    threshold = load_champion(settings).threshold
    assert threshold is not None
    contacts = _rows(
        settings,
        "select churn_probability, contact from scoring.predictions where as_of_date = ?",
        [night],
    )
    assert all(contact == (p >= threshold) for p, contact in contacts)
    assert 0 < result.contact_rows == sum(1 for _, contact in contacts if contact) < len(contacts)


def test_a_rerun_of_the_same_night_changes_nothing(settings: Settings) -> None:

    night = _night(settings)
    _score_night(settings, night)
    before = _predictions(settings, night)
    _score_night(settings, night)
    assert _predictions(settings, night) == before
    runs = _rows(
        settings, "select count(*) from scoring.scoring_runs where as_of_date = ?", [night]
    )
    assert runs[0][0] >= 2  # every attempt is logged; the partition is not duplicated


def test_the_top_band_carries_three_reasons_and_no_one_else_does(settings: Settings) -> None:
    from churnops.registry import load_champion

    night = _night(settings)
    _score_night(settings, night)
    features = set(load_champion(settings).features)
    rows = _predictions(settings, night)
    high = [row for row in rows if row[2] == "high"]
    assert high, "no customer in the high band: the test data lost its churners"
    assert all(row[1] >= 0.30 for row in high)
    assert all(1 <= len(row[5]) <= 3 and set(row[5]) <= features for row in high)
    assert sum(len(row[5]) == 3 for row in high) / len(high) > 0.9
    assert all(row[5] is None for row in rows if row[2] != "high")


def test_shadow_rows_exist_if_and_only_if_a_challenger_exists(settings: Settings) -> None:

    night = _night(settings)
    count = (
        "select count(*), min(model_version) from scoring.shadow_predictions where as_of_date = ?"
    )
    _score_night(settings, night)
    assert _rows(settings, count, [night])[0][0] == 0

    _set_challenger(settings, "2")
    try:
        result = _score_night(settings, night)
        shadow = _rows(settings, count, [night])[0]
        assert shadow == (result.rows_scored, "2")
        # Shadow scores are never served: every prediction still comes from the champion.
        assert {row[3:5] for row in _predictions(settings, night)} == {("1", "champion")}
    finally:
        _set_challenger(settings, None)
    _score_night(settings, night)  # the challenger is gone: so are the night's shadow rows
    assert _rows(settings, count, [night])[0][0] == 0


def test_without_a_champion_scoring_skips_and_keeps_earlier_predictions(
    settings: Settings,
) -> None:
    from churnops.registry.tracking import mlflow_client

    night = _night(settings)
    _score_night(settings, night)
    before = _predictions(settings, night)
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    client.delete_registered_model_alias(name, "champion")
    try:
        result = _score_night(settings, night)
    finally:
        client.set_registered_model_alias(name, "champion", "1")
    assert result.state == "skipped"
    assert "no champion" in result.message and "earlier predictions are kept" in result.message
    assert _predictions(settings, night) == before
    last = _rows(
        settings,
        "select state, rows_scored from scoring.scoring_runs order by finished_at desc limit 1",
    )
    assert last == [("skipped", 0)]


def _plan_and_shards(settings: Settings, night: dt.date, shards: int, only: list[int]):
    from churnops.score.nightly import plan_night, score_shard

    stores = stores_for(settings)
    plan = plan_night(settings, stores.scoring, night, shards=shards)
    results = [score_shard(settings, stores.features, stores.scoring, plan, i) for i in only]
    return stores, plan, results


def _served_rows(settings: Settings, night: dt.date) -> list[tuple]:
    """Everything served and shadowed for the night but the scoring time."""
    served = _rows(
        settings,
        "select customer_id, churn_probability, risk_band, model_name, model_version, "
        "served_by, contact, reason_codes from scoring.predictions where as_of_date = ? "
        "order by customer_id",
        [night],
    )
    shadow = _rows(
        settings,
        "select customer_id, churn_probability, risk_band, model_version "
        "from scoring.shadow_predictions where as_of_date = ? order by customer_id",
        [night],
    )
    return served + [("shadow", *row) for row in shadow]


def test_four_shards_give_exactly_the_rows_of_one(settings: Settings) -> None:
    """Champion, challenger in the shadow and a 30 % canary: every served and shadow row
    (probability, band, serving version, reasons) is the same whether the night is scored
    in one shard or in four."""

    from churnops.score.nightly import score_day

    night = _night(settings)
    stores = stores_for(settings)
    _set_challenger(settings, "2")
    try:
        with canary_rollout(settings, "2", 0.3) as canary:
            one = score_day(canary, stores.features, stores.scoring, night, shards=1)
            rows_of_one = _served_rows(settings, night)
            four = score_day(canary, stores.features, stores.scoring, night, shards=4)
            rows_of_four = _served_rows(settings, night)
    finally:
        _set_challenger(settings, None)
    assert (one.shards, four.shards) == (1, 4)
    assert rows_of_four == rows_of_one
    assert one.canary_rows == four.canary_rows > 0
    assert one.shadow_rows == four.shadow_rows == one.rows_scored
    assert one.band_counts == four.band_counts and one.reason_rows == four.reason_rows
    assert "in 4 shards" in four.message


def test_a_night_is_published_only_when_every_shard_is_staged(settings: Settings) -> None:
    from churnops.score.nightly import publish_night, score_shard
    from churnops.score.store import IncompleteNight

    night = _night(settings)
    _score_night(settings, night)
    before = _predictions(settings, night)
    stores, plan, results = _plan_and_shards(settings, night, 3, only=[0, 2])
    assert sum(r.rows for r in results) < len(before)
    with pytest.raises(IncompleteNight, match="shard 2/3 of plan"):
        publish_night(settings, stores.features, stores.scoring, plan, results)
    # Two shards' worth of staged rows, and a reported shard that staged nothing, change
    # nothing either: the staged rows are checked against what each shard reported.
    fake = [*results, replace_rows(results[0], shard=1)]
    with pytest.raises(IncompleteNight, match="shard 2: 0 staged"):
        publish_night(settings, stores.features, stores.scoring, plan, fake)
    assert _predictions(settings, night) == before
    # The missing shard, staged twice (a retry replaces its own slice), completes it.
    for _ in range(2):
        results.append(score_shard(settings, stores.features, stores.scoring, plan, 1))
    result = publish_night(settings, stores.features, stores.scoring, plan, results)
    assert result.rows_scored == len(before)
    assert _predictions(settings, night) == before
    staged = _rows(
        settings, "select count(*) from scoring.night_shards where as_of_date = ?", [night]
    )
    assert staged == [(0,)]  # published and cleared in the same transaction


def replace_rows(result, **changes):
    from dataclasses import replace

    return replace(result, **changes)


def test_a_failed_publish_leaves_the_previous_night(settings: Settings) -> None:
    from churnops.score.nightly import publish_night

    night = _night(settings)
    _score_night(settings, night)
    before = _predictions(settings, night)
    stores, plan, results = _plan_and_shards(settings, night, 2, only=[0, 1])
    # A staged row that breaks the predictions' CHECK: the publish fails mid-way.
    with warehouse_of(settings).transaction() as session:
        session.execute(
            "update scoring.night_shards set churn_probability = 7.0 where customer_id = "
            "(select max(customer_id) from scoring.night_shards)"
        )
    with pytest.raises(ConstraintViolation):
        publish_night(settings, stores.features, stores.scoring, plan, results)
    assert _predictions(settings, night) == before


def test_a_shard_with_a_customer_twice_is_refused_and_nothing_changes(
    settings: Settings,
) -> None:
    from churnops.score.store import DuplicateCustomers

    night = _night(settings)
    before = _predictions(settings, night)
    scoring = stores_for(settings).scoring
    served = scoring.night(night).slice(0, 50)
    doubled = pa.concat_tables([served, served.slice(0, 3)])
    with pytest.raises(DuplicateCustomers, match="3 duplicate customer rows"):
        scoring.stage_shard(night, "test-plan", 0, doubled)
    assert _predictions(settings, night) == before


def test_the_canary_is_a_stable_share_of_20k_customers_on_consecutive_nights(
    settings: Settings, tmp_path: Path
) -> None:
    """A 20,000-customer warehouse scored by the registry above on two nights, with the
    challenger on a 10 % canary: within one point of 10 %, the same customers both nights."""
    from churnops.features import build_features
    from churnops.ingest import ingest_range
    from churnops.simulate import simulate_days
    from churnops.storage import shared_files_for

    # Its own landing drops and warehouse; the registry of the trained state above.
    big = load_settings(
        {
            "CHURNOPS_STATE_DIR": str(tmp_path),
            "CHURNOPS_SIM_CUSTOMERS": "20000",
            "CHURNOPS_CANARY_SHARE": "0.10",
            "CHURNOPS_MLFLOW_TRACKING_URI": str(settings.mlflow.tracking_uri),
        }
    )
    start = big.simulation.history_start
    first_night = start + dt.timedelta(days=91)
    last_night = first_night + dt.timedelta(days=1)
    simulate_days(big.simulation, start, last_night, big.paths.landing_dir)
    ingest_range(stores_for(big).raw, shared_files_for(big), start, last_night)
    build_features(big, first_night, last_night)

    _set_challenger(settings, "2")
    try:
        with canary_rollout(big, "2", big.rollout.canary_share) as canary:
            nights = [_score_night(canary, first_night + dt.timedelta(days=i)) for i in range(2)]
    finally:
        _set_challenger(settings, None)
    canaries = []
    for result in nights:
        rows = _rows(
            big,
            "select customer_id, served_by, model_version from scoring.predictions "
            "where as_of_date = ?",
            [result.as_of_date],
        )
        assert len(rows) == result.rows_scored > 18_000
        in_canary = {r[0] for r in rows if r[1] == "challenger"}
        assert all(r[2] == ("2" if r[1] == "challenger" else "1") for r in rows)
        assert abs(len(in_canary) / len(rows) - 0.10) <= 0.01
        canaries.append((in_canary, {r[0] for r in rows}))
    (first, first_all), (second, second_all) = canaries
    both = first_all & second_all
    assert first & both == second & both


def test_status_reports_the_last_nightly_run_and_the_champion(settings: Settings) -> None:
    from churnops.status import collect_status, render_status

    night = _night(settings)
    result = _score_night(settings, night)
    report = collect_status(settings)
    run = report["last_nightly_run"]
    assert (run["as_of_date"], run["state"], run["rows_scored"]) == (
        night,
        "scored",
        result.rows_scored,
    )
    assert report["champion"]["version"] == "1"
    text = render_status(report, color=True)
    assert f"Last nightly run : {night}" in text and "\033[32mscored\033[0m" in text
    assert f"{result.rows_scored:,} scored" in text
    assert "Production model : v1" in text


def test_a_planned_version_loads_in_a_new_process_from_the_disk_copy_without_mlflow(
    settings: Settings,
) -> None:
    """The plan keeps a copy of each version on this machine: a shard's process loads it
    by version and run without importing MLflow, and scores exactly what the registry's
    booster scores. A copy under another run's name is never used."""
    import json
    import subprocess
    import sys

    from churnops.registry import load_champion
    from churnops.registry.champion import cached_version_path, version_run_id
    from churnops.score.nightly import plan_night

    plan = plan_night(settings, stores_for(settings).scoring, _night(settings))
    champion = load_champion(settings)
    assert plan.champion_run_id == champion.run_id == version_run_id(settings, "1")
    copy = cached_version_path(settings, "1", champion.run_id)
    assert copy.with_suffix(".txt").exists() and copy.with_suffix(".json").exists()
    script = f"""
import json, sys
from churnops.settings import load_settings
from churnops.registry.champion import load_version
settings = load_settings({{"CHURNOPS_STATE_DIR": {str(settings.paths.state_dir)!r},
    "CHURNOPS_MLFLOW_TRACKING_URI": {settings.mlflow.tracking_uri!r}}})
model = load_version(settings, "1", {champion.run_id!r})
print(json.dumps({{"mlflow": "mlflow" in sys.modules, "trees": model.booster.num_trees(),
    "slope": model.model.calibration_slope, "text": model.booster.model_to_string()}}))
"""
    out = json.loads(
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
    )
    assert out["mlflow"] is False
    assert out["trees"] == champion.booster.num_trees()
    assert out["slope"] == champion.model.calibration_slope
    assert out["text"] == champion.booster.model_to_string()

    from churnops.registry.champion import RegistryError, load_version

    with pytest.raises(RegistryError, match="not other-run"):
        load_version(settings, "1", "other-run")


def test_with_the_mlflow_server_down_scoring_fails_in_one_line_and_the_night_stays(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry does not answer (nothing listens on its port): the plan fails at once
    with one line naming the server (the task's retry tries again), before it touches
    anything; the night's predictions stay as they were."""
    import socket
    from dataclasses import replace

    from churnops.cli import main
    from churnops.registry.tracking import RegistryUnavailable
    from churnops.score.nightly import plan_night
    from tests.trained_state import TRAINED_ENV

    night = _night(settings)
    _score_night(settings, night)
    before = _predictions(settings, night)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    down = replace(settings, mlflow=replace(settings.mlflow, tracking_uri=uri))
    with pytest.raises(RegistryUnavailable, match=f"127.0.0.1:{port}"):
        plan_night(down, stores_for(down).scoring, night)
    assert _predictions(settings, night) == before

    for name, value in {
        **TRAINED_ENV,
        "CHURNOPS_STATE_DIR": str(settings.paths.state_dir),
        "CHURNOPS_MLFLOW_TRACKING_URI": uri,
    }.items():
        monkeypatch.setenv(name, value)
    assert main(["score", "--date", night.isoformat()]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("churnops score: ") and len(err.splitlines()) == 1, err
    assert f"127.0.0.1:{port}" in err
    assert _predictions(settings, night) == before
