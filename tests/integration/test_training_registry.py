"""Training, champion/challenger and the MLflow registry on a real (small) simulated warehouse.

One warehouse for the module: 3,000 customers over 460 days with the ``price_increase``
scenario from 2025-07-03 (concept drift: billing starts to matter much more). The story:

1. a model trained on as-of dates up to 2025-07-20 (its training rows all before the
   change) becomes the first champion;
2. a retrain on the same data is not better: the champion stays, the decision says why;
3. a retrain on post-change as-of dates, with the old champion re-scored on the same
   post-change test window, wins clearly (about +0.05 AUC here, margin 0.02) and is
   promoted: the old champion becomes previous_champion;
4. rollback gives the champion alias back; the audit log has every move.

Real MLflow (SQLite + local artifacts under the tmp state dir), real LightGBM.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from churnops.settings import Settings, load_settings
from churnops.stores import stores_for
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.integration

SCENARIO_START = dt.date(2025, 7, 3)
PRE_CHANGE_END = dt.date(2025, 7, 20)
ACTOR = "pytest"


@dataclass
class Story:
    settings: Settings
    first: object
    same_data: object
    after_change: object
    rollback_moves: list
    aliases_after_promotion: dict[str, str]
    aliases_after_rollback: dict[str, str]


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The module's settings as the environment a `churnops` process reads."""
    return {
        "CHURNOPS_STATE_DIR": str(tmp_path_factory.mktemp("training-registry")),
        "CHURNOPS_SIM_CUSTOMERS": "3000",
        "CHURNOPS_SIM_DAYS": "460",
        "CHURNOPS_SIM_SCENARIO": "price_increase",
        "CHURNOPS_SIM_SCENARIO_START": SCENARIO_START.isoformat(),
        # The story's pre-change history is short on purpose (a small, fast test): its
        # first model also learns from the as-of dates whose 90-day windows are partial.
        "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY": "false",
        # This module is about the rules' own decision (promote, keep, rollback) and the
        # registry under it: a winner replaces the champion at once. The phased rollout
        # (on by default) has its own tests (tests/e2e/test_rollout_dag.py).
        "CHURNOPS_ROLLOUT_ENABLED": "false",
    }


@pytest.fixture(scope="module")
def settings(environment: dict[str, str]) -> Settings:
    from churnops.pipeline import bootstrap_history

    settings = load_settings(environment)
    bootstrap_history(settings, say=lambda _line: None)
    return settings


@pytest.fixture(scope="module")
def story(settings: Settings) -> Story:
    from churnops.registry import current_aliases, rollback
    from churnops.retrain import retrain

    features = stores_for(settings).features
    first = retrain(settings, features, actor=ACTOR, reason="first model", as_of_end=PRE_CHANGE_END)
    same_data = retrain(
        settings, features, actor=ACTOR, reason="same data", as_of_end=PRE_CHANGE_END
    )
    after_change = retrain(
        settings, features, actor=ACTOR, reason="price change", as_of_start=SCENARIO_START
    )
    after_promotion = current_aliases(settings)
    moves = rollback(settings, "the new model misbehaves in the canary", "ana")
    return Story(
        settings,
        first,
        same_data,
        after_change,
        moves,
        after_promotion,
        current_aliases(settings),
    )


def test_local_profile_tracks_to_sqlite_with_artifacts_in_the_state_dir(story: Story) -> None:
    from churnops.registry import mlflow_client

    settings = story.settings
    assert settings.mlflow.tracking_uri == f"sqlite:///{settings.paths.mlflow_dir}/mlflow.db"
    assert (settings.paths.mlflow_dir / "mlflow.db").exists()
    experiment = mlflow_client(settings).get_experiment_by_name("churn")
    assert experiment is not None
    assert experiment.artifact_location == (settings.paths.mlflow_dir / "artifacts/churn").as_uri()
    assert any((settings.paths.mlflow_dir / "artifacts" / "churn").rglob("model.lgb"))


def test_first_training_becomes_champion(story: Story) -> None:
    first = story.first
    assert first.action == "promote"
    assert first.version == "1" and first.champion_version is None
    assert first.challenger_metrics.auc >= 0.70
    assert first.windows.test_end <= PRE_CHANGE_END
    assert "There was no champion" in first.summary
    assert "v1 is the new champion" in first.summary


def test_a_retrain_on_the_same_data_keeps_the_champion_and_says_why(story: Story) -> None:
    same = story.same_data
    assert same.action == "keep"
    assert same.champion_version == "1" and same.version == "2"
    # Same rows, same seed: the same model, so exactly no gain.
    assert same.champion_metrics is not None
    assert same.challenger_metrics.auc == pytest.approx(same.champion_metrics.auc, abs=1e-12)
    assert any(r.endswith("<= margin 0.020") for r in same.decision.reasons)
    assert "the champion stays: the challenger is not better by more than 0.020 AUC" in (
        same.decision.reasons
    )
    assert "v1 stays champion; v2 is the challenger" in same.summary


def test_a_post_change_challenger_beats_the_re_scored_champion(story: Story) -> None:
    after = story.after_change
    champion = after.champion_metrics
    challenger = after.challenger_metrics
    assert after.action == "promote", after.summary
    assert after.windows.train_start >= SCENARIO_START
    assert champion is not None and champion.same_window_as(challenger)
    assert challenger.auc - champion.auc > 0.03, after.summary
    assert champion.train_auc is None  # re-scored, not trained on this window
    assert story.aliases_after_promotion == {
        "champion": "3",
        "previous_champion": "1",
        "challenger": "2",
    }


def test_rollback_restores_the_previous_champion(story: Story) -> None:
    from churnops.registry import NoRollbackTarget, rollback

    assert story.aliases_after_rollback == {"champion": "1", "challenger": "2"}
    assert [m.describe() for m in story.rollback_moves] == [
        "champion: v3 -> v1 (rollback by ana: the new model misbehaves in the canary)",
        "previous_champion: v1 -> nobody (rollback by ana: the new model misbehaves in the canary)",
    ]
    with pytest.raises(NoRollbackTarget, match="no version holds the 'previous_champion' alias"):
        rollback(story.settings, "again", "ana")


def test_the_audit_log_has_every_move_and_every_decision(story: Story) -> None:
    from churnops.registry import mlflow_client, read_audit_log, read_decisions

    settings = story.settings
    moves = [(m.alias, m.from_version, m.to_version, m.action) for m in read_audit_log(settings)]
    assert moves[::-1] == [
        ("champion", None, "1", "promote"),
        ("challenger", None, "2", "challenger"),
        ("previous_champion", None, "1", "promote"),
        ("champion", "1", "3", "promote"),
        ("champion", "3", "1", "rollback"),
        ("previous_champion", "1", None, "rollback"),
    ]
    assert {m.actor for m in read_audit_log(settings)} == {ACTOR, "ana"}

    decisions = read_decisions(settings)
    assert [(d.challenger_version, d.champion_version, d.action) for d in decisions[::-1]] == [
        ("1", None, "promote"),
        ("2", "1", "keep"),
        ("3", "1", "promote"),
    ]
    keep = decisions[1]
    assert keep.reasons == story.same_data.decision.reasons
    assert keep.champion_metrics is not None
    assert keep.challenger_metrics["auc"] == pytest.approx(story.same_data.challenger_metrics.auc)

    client = mlflow_client(settings)
    v3 = client.get_model_version("churn", "3").tags
    assert v3["decision"] == "promote" and "champion_since" in v3 and "champion_until" in v3
    assert v3["rolled_back"].endswith("by ana: the new model misbehaves in the canary")
    v2 = client.get_model_version("churn", "2").tags
    assert v2["decision"] == "keep" and "challenger_since" in v2


def test_a_training_run_records_everything_needed_to_trust_and_reproduce(story: Story) -> None:
    from churnops.registry import mlflow_client
    from churnops.registry.runs import REFERENCE_SCORE_COLUMN

    settings = story.settings
    client = mlflow_client(settings)
    registered = story.after_change.registered
    run = client.get_run(registered.run_id)
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    assert metrics["test_auc"] == pytest.approx(story.after_change.challenger_metrics.auc)
    for name in ("test_recall", "test_precision", "test_f1", "test_brier", "train_auc"):
        assert name in metrics
    assert "train_test_auc_gap" in metrics and "segment_auc.plan_type.basic" in metrics
    assert params["train.snapshot_every_days"] == "7" and params["lgb.deterministic"] == "True"
    assert len(tags["data.sha256"]) == 64 and int(tags["data.train_positives"]) > 0
    assert tags["data.as_of_range"].startswith(str(story.after_change.windows.train_start))
    assert len(tags["dbt_manifest_sha256"]) == 64  # the bootstrap's dbt run wrote it
    assert tags["code_version"] and tags["actor"] == ACTOR and tags["trigger"] == "price change"

    artifacts = _artifact_paths(client, registered.run_id)
    assert {
        "features.json",
        "metrics.json",
        "model_card.md",
        "reference/features.parquet",
        "plots/roc.png",
        "plots/calibration.png",
        "plots/importance.png",
        "plots/shap_summary.png",
    } <= artifacts

    local = Path(client.download_artifacts(registered.run_id, "reference/features.parquet"))
    reference = pd.read_parquet(local)
    assert 0 < len(reference) <= 50_000
    assert reference["as_of_date"].max() <= story.after_change.windows.train_end
    assert REFERENCE_SCORE_COLUMN in reference and "churned_within_90d" in reference
    features = json.loads(
        Path(client.download_artifacts(registered.run_id, "features.json")).read_text()
    )
    assert len(features["features"]) == 46 and "customer_id" not in features["features"]

    version = client.get_model_version("churn", registered.version)
    assert version.tags["test_auc"] == f"{story.after_change.challenger_metrics.auc:.4f}"
    assert version.tags["as_of_range"] == tags["data.as_of_range"]


def test_the_champion_loads_as_a_native_booster_and_scores_like_at_training(story: Story) -> None:
    import lightgbm as lgb

    from churnops.registry import champion_metrics, load_champion
    from churnops.train import load_training_frame

    settings = story.settings
    champion = load_champion(settings)  # v1 again, after the rollback
    assert champion.version == "1"
    assert isinstance(champion.booster, lgb.Booster)
    assert len(champion.features) == 46
    registered = champion_metrics(settings)
    assert registered is not None
    assert registered.auc == pytest.approx(story.first.challenger_metrics.auc)

    frame = load_training_frame(
        stores_for(settings).features, as_of_end=PRE_CHANGE_END, params=settings.train
    )
    test = frame[frame["as_of_date"] >= registered.test_start]
    assert roc_auc_score(test["churned_within_90d"], champion.predict(test)) == pytest.approx(
        registered.auc, abs=1e-9
    )


def test_training_loads_only_the_snapshots_its_split_uses(story: Story) -> None:
    """load_split (what retrain reads) plans the split on the labels, loads only the
    snapshots it keeps, and splits exactly like loading every snapshot and splitting."""
    from churnops.train import load_split, load_training_frame, plan_split, time_split

    settings = story.settings
    features = stores_for(settings).features
    params = settings.train
    everything = load_training_frame(features, as_of_end=PRE_CHANGE_END, params=params)
    whole = time_split(everything, params)
    planned = plan_split(features, as_of_end=PRE_CHANGE_END, params=params)
    split = load_split(features, as_of_end=PRE_CHANGE_END, params=params)
    assert planned == whole.windows == split.windows
    assert split.counts() == whole.counts()
    for part in ("train", "validation", "test"):
        assert getattr(split, part).equals(getattr(whole, part)), part
    loaded = load_training_frame(features, as_of_end=PRE_CHANGE_END, params=params, windows=planned)
    skipped = set(everything["as_of_date"]) - set(loaded["as_of_date"])
    assert skipped, "the story's history has snapshots outside the split"
    assert all(planned.part_of(day) is None for day in skipped)
    assert len(everything) - len(loaded) >= planned.gap_rows_dropped > 0


def test_the_training_check_refuses_like_the_split_without_reading_features(
    story: Story,
) -> None:
    """plan_split (the retrain DAG's check) raises the split's InsufficientHistory from the
    labels alone when a part would have too few churners."""
    from churnops.train import InsufficientHistory, load_split, plan_split

    features = stores_for(story.settings).features
    greedy = dataclasses.replace(story.settings.train, min_eval_positives=10**9)
    with pytest.raises(InsufficientHistory, match="too few labelled churners") as planned:
        plan_split(features, as_of_end=PRE_CHANGE_END, params=greedy)
    with pytest.raises(InsufficientHistory) as loaded:
        load_split(features, as_of_end=PRE_CHANGE_END, params=greedy)
    assert str(planned.value) == str(loaded.value)


# ------------------------------------------------------------------ behaviour of the model
@pytest.fixture(scope="module")
def scoring_rows(story: Story) -> pd.DataFrame:
    from churnops.train import load_training_frame

    settings = story.settings
    frame = load_training_frame(
        stores_for(settings).features, as_of_end=PRE_CHANGE_END, params=settings.train
    )
    return frame[frame["as_of_date"] == frame["as_of_date"].max()].reset_index(drop=True)


def _mean_risk(story: Story, rows: pd.DataFrame, version: str = "1") -> float:
    from churnops.registry import load_version

    return float(load_version(story.settings, version).predict(rows).mean())


def test_more_cancellation_tickets_raise_the_risk(story: Story, scoring_rows: pd.DataFrame) -> None:
    worse = scoring_rows.copy()
    for column in ("cancellation_tickets_90d", "support_tickets_90d", "support_tickets_30d"):
        worse[column] += 2
    worse["days_since_last_ticket"] = 3
    assert _mean_risk(story, worse) > 1.2 * _mean_risk(story, scoring_rows)


def test_fewer_logins_raise_the_risk(story: Story, scoring_rows: pd.DataFrame) -> None:
    worse = scoring_rows.copy()
    for column in ("logins_7d", "logins_30d", "logins_90d", "login_frequency_30d"):
        worse[column] = worse[column] * 0.2
    for column in ("active_days_7d", "active_days_30d"):
        worse[column] = (worse[column] * 0.2).round().astype(int)
    worse["session_minutes_30d"] *= 0.2
    assert _mean_risk(story, worse) > 1.2 * _mean_risk(story, scoring_rows)


def test_late_payments_raise_the_risk(story: Story, scoring_rows: pd.DataFrame) -> None:
    """Judged on the model trained after the price change: from then on unreliable payers
    churn far more in the simulator (before it, six weeks of a small base leave the effect
    too faint for the first model to be sure of)."""
    worse = scoring_rows.copy()
    worse["late_payments_90d"] += 2
    worse["unpaid_overdue_invoices"] += 1
    worse["avg_days_late_90d"] += 10
    version = story.after_change.version
    assert _mean_risk(story, worse, version) > 1.1 * _mean_risk(story, scoring_rows, version)


def test_the_customer_id_changes_nothing(story: Story, scoring_rows: pd.DataFrame) -> None:
    from churnops.registry import load_version

    model = load_version(story.settings, "1")
    shuffled = scoring_rows.copy()
    shuffled["customer_id"] = shuffled["customer_id"].to_numpy()[::-1] + 1_000_000
    assert "customer_id" not in model.features
    assert (model.predict(shuffled) == model.predict(scoring_rows)).all()


def test_the_model_beats_the_trivial_baseline(story: Story) -> None:
    for outcome in (story.first, story.after_change):
        metrics = outcome.challenger_metrics
        assert metrics.baseline_auc is not None
        assert metrics.auc > metrics.baseline_auc + 0.1, metrics.summary()


# ------------------------------------------------------------------ the lock
def test_concurrent_promotions_serialise(story: Story) -> None:
    """Two promotions at once: one champion, and the other one is its previous_champion."""
    import dataclasses

    from churnops.registry import current_aliases, mlflow_client, promote, read_audit_log

    settings = dataclasses.replace(
        story.settings,
        mlflow=dataclasses.replace(story.settings.mlflow, registered_model_name="churn_lock"),
    )
    client = mlflow_client(settings)
    source = client.get_model_version("churn", "1")
    client.create_registered_model("churn_lock")
    for _ in range(3):
        client.create_model_version("churn_lock", source.source, run_id=source.run_id)
    promote(settings, "1", "start", ACTOR)

    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def promote_after_barrier(version: str) -> None:
        try:
            barrier.wait()
            promote(settings, version, f"race {version}", ACTOR)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=promote_after_barrier, args=(v,)) for v in ("2", "3")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    aliases = current_aliases(settings)
    assert {aliases["champion"], aliases["previous_champion"]} == {"2", "3"}
    champion_moves = [m for m in read_audit_log(settings) if m.alias == "champion"]
    assert [(m.from_version, m.to_version) for m in champion_moves[:2]][::-1] in (
        [("1", "2"), ("2", "3")],
        [("1", "3"), ("3", "2")],
    )


def test_a_stale_decision_is_refused(story: Story) -> None:
    from churnops.registry import StaleDecision, promote

    with pytest.raises(StaleDecision, match="made against champion v3, but the champion is now v1"):
        promote(story.settings, "2", "late", ACTOR, expected_champion="3")


def test_promoting_a_version_that_does_not_exist_names_the_ones_there_are(story: Story) -> None:
    line = cli_one_line_error(
        ["promote", "99", "--reason", "typo"],
        {"CHURNOPS_STATE_DIR": str(story.settings.paths.state_dir)},
    )
    assert re.fullmatch(
        r"churnops promote: 'churn' has no version 99: its versions are v1, v2, v3(, v\d+)*", line
    ), line


def _artifact_paths(client, run_id: str, path: str | None = None) -> set[str]:
    found: set[str] = set()
    for item in client.list_artifacts(run_id, path):
        if item.is_dir:
            found |= _artifact_paths(client, run_id, item.path)
        else:
            found.add(item.path)
    return found


def test_status_reports_the_champion_the_decisions_and_the_moves(story: Story) -> None:
    from churnops.status import collect_status, render_status

    report = collect_status(story.settings)
    assert report["champion"]["version"] == "1"
    assert report["champion"]["since"] is not None
    assert report["champion"]["test_auc_at_training"] == pytest.approx(
        story.first.challenger_metrics.auc
    )
    assert report["audit_log"][0]["action"] == "rollback"  # newest first
    assert [d["action"] for d in report["recent_decisions"]] == ["promote", "keep", "promote"]
    text = render_status(report)
    assert "Production model : v1" in text
    assert "champion: v3 -> v1 (rollback by ana" in text


def test_a_searched_retrain_logs_its_trials_with_the_run(story: Story) -> None:
    """``CHURNOPS_OPTUNA``: the Optuna trials travel with the training run (params and a
    JSON artifact), and the registered model is the one trained with the best trial."""
    import dataclasses

    from churnops.registry import mlflow_client
    from churnops.retrain import retrain

    settings = story.settings
    params = dataclasses.replace(settings.train, optuna=True, optuna_trials=3, max_rounds=150)
    outcome = retrain(
        settings,
        stores_for(settings).features,
        actor=ACTOR,
        reason="optuna search",
        params=params,
        require_approval=True,
    )
    client = mlflow_client(settings)
    run = client.get_run(outcome.registered.run_id)
    assert run.data.params["search.trials"] == "3"
    local = client.download_artifacts(run.info.run_id, "hyperparameter_search.json")
    search = json.loads(Path(local).read_text())
    assert len(search["history"]) == 3
    best = max(search["history"], key=lambda t: t["validation_auc"])
    assert search["best_trial"] == best["trial"]
    assert run.data.params["lgb.num_leaves"] == str(best["num_leaves"])
    # Approval required: whatever the rules say, the champion stays where it was.
    assert outcome.action in {"keep", "await_approval"} and outcome.champion_after == "1"


def test_a_version_enters_the_rollout_by_hand_and_one_rollout_runs_at_a_time(
    story: Story, environment: dict[str, str]
) -> None:
    """`churnops rollout start VERSION`: the version becomes the challenger in the shadow
    (what a winning retrain does with CHURNOPS_ROLLOUT_ENABLED); a second start while it
    runs, or the champion itself, is refused in one line; the rollback ends it."""
    import os
    import subprocess
    import sys

    from churnops.deployment.ops import current_rollout
    from churnops.registry import current_aliases

    settings = story.settings
    champion = current_aliases(settings)["champion"]
    other = next(v for v in ("1", "2", "3") if v != champion)
    assert current_rollout(settings) is None or not current_rollout(settings).active

    def churnops(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "churnops.cli", *args],
            env={**os.environ, **environment},
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = churnops("rollout", "start", other, "--reason", "by hand", "--date", "2026-03-01")
    assert started.returncode == 0, started.stderr
    assert f"v{other} enters the rollout against champion v{champion}: shadow" in started.stdout
    state = current_rollout(settings)
    assert state is not None and state.active
    assert (state.challenger_version, state.champion_version) == (other, champion)
    assert state.phase == "shadow" and state.phase_started_on == dt.date(2026, 3, 1)
    assert current_aliases(settings)["challenger"] == other

    line = cli_one_line_error(["rollout", "start", other, "--reason", "again"], environment)
    assert f"v{other} is in its rollout (shadow, running)" in line, line
    line = cli_one_line_error(["rollout", "start", "99", "--reason", "x"], environment)
    assert "in its rollout" in line, line  # one at a time, whatever the version

    back = churnops("rollback", "--reason", "enough")
    assert back.returncode == 0, back.stderr
    assert not current_rollout(settings).active
    line = cli_one_line_error(["rollout", "start", champion, "--reason", "x"], environment)
    assert f"v{champion} already is the champion" in line, line


def test_the_retention_policy_archives_old_versions_without_an_alias_and_deletes_none(
    story: Story,
) -> None:
    """Every retrain applies it: here nothing is old enough (registered minutes ago). A
    month on, the versions without an alias are tagged archived with the reason, the
    aliased ones are untouched, every version is still in the registry, and a second
    sweep has nothing left to do."""
    import datetime as dt

    from churnops.registry import current_aliases, mlflow_client
    from churnops.registry.retention import archive_stale_versions

    settings = story.settings
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    before = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert archive_stale_versions(settings, "pytest") == []

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=settings.mlflow.archive_after_days)
    aliased = set(current_aliases(settings).values())
    archived = archive_stale_versions(settings, "pytest", now=later)
    assert {version for version, _ in archived} == before - aliased and archived
    for version, reason in archived:
        tags = client.get_model_version(name, version).tags
        assert tags["lifecycle"] == "archived" and tags["archived_at"]
        assert tags["archived_reason"] == f"{reason} by pytest"
    for version in aliased:
        assert client.get_model_version(name, version).tags.get("lifecycle") != "archived"
    after = {str(v.version) for v in client.search_model_versions(f"name = '{name}'")}
    assert after == before  # archived, never deleted
    assert archive_stale_versions(settings, "pytest", now=later) == []
