"""The retrain DAG, run for real with dag.test() on a small simulated warehouse.

One warehouse for the module: 2,000 customers over 365 days, about the least history the
default training set-up accepts: as-of dates count from day 90 (their 90-day feature
windows whole), and the time split needs 6 months of them whose 90-day labels have matured.
Two runs of ``churn_retrain``, as a person would start them from the trigger form:

1. with a reason: there is no champion, so the first model (deliberately weak: one tree)
   is promoted; the ``model_promoted`` asset event carries its version;
2. with ``require_approval=true`` and a policy under which the rules would promote the
   (much stronger) second model: it waits for approval as challenger, the champion stays,
   ``announce_promotion`` is skipped and no asset event is emitted.

Real dbt, LightGBM, MLflow (SQLite under the tmp state dir) and Airflow metadata DB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from churnops.settings import Settings, load_settings
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.e2e

DAG_ID = "churn_retrain"
REASON = "e2e: retrain from the trigger form"
WAREHOUSE_ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "2000",
    "CHURNOPS_SIM_DAYS": "365",
    # A failing task fails the run at once: dag.test() would wait out every retry delay.
    "CHURNOPS_TASK_RETRIES": "0",
    # The decision's own outcomes (promote, await_approval): with the rollout on (the
    # default), a winner would enter it instead (tests/e2e/test_rollout_dag.py).
    "CHURNOPS_ROLLOUT_ENABLED": "false",
}
# Run 1: a one-tree model, enough for a first champion once the floor is lowered.
WEAK_FIRST_MODEL_ENV = {"CHURNOPS_MAX_ROUNDS": "1", "CHURNOPS_PROMOTION_MIN_AUC": "0.5"}
# Run 2: the rules promote any AUC gain, whatever else moves; only the approval stops it.
PROMOTE_ON_ANY_GAIN_ENV = {
    "CHURNOPS_PROMOTION_MIN_AUC_GAIN": "0",
    "CHURNOPS_PROMOTION_MAX_RECALL_DROP": "1",
    "CHURNOPS_PROMOTION_MAX_BRIER_RISE": "1",
    "CHURNOPS_PROMOTION_MAX_SEGMENT_AUC_DROP": "1",
}


@dataclass
class RetrainRun:
    state: str
    tasks: dict[str, str | None]
    run_id: str
    xcom: dict
    asset_events: list[tuple[str, dict]]  # (asset uri, extra) emitted by this run
    aliases_after: dict[str, str]


@dataclass
class Story:
    settings: Settings
    dag: object
    first: RetrainRun
    approval: RetrainRun


def _asset_events(run_id: str) -> list[tuple[str, dict]]:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        events = session.scalars(
            select(AssetEvent).where(
                AssetEvent.source_dag_id == DAG_ID, AssetEvent.source_run_id == run_id
            )
        ).all()
        return [(event.uri, dict(event.extra)) for event in events]


def _run(dag, settings: Settings, conf: dict) -> RetrainRun:
    from churnops.registry import current_aliases

    run = dag.test(run_conf=conf)
    instances = run.get_task_instances()
    decide = next(ti for ti in instances if ti.task_id == "retrain_and_decide")
    return RetrainRun(
        state=run.state,
        tasks={ti.task_id: ti.state for ti in instances},
        run_id=run.run_id,
        xcom=decide.xcom_pull(task_ids="retrain_and_decide") or {},
        asset_events=_asset_events(run.run_id),
        aliases_after=current_aliases(settings),
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    from churnops.pipeline import bootstrap_history

    state = tmp_path_factory.mktemp("retrain-state")
    with pytest.MonkeyPatch.context() as env:
        # Tasks read their settings from the environment when they run (load_settings()).
        env.setenv("CHURNOPS_STATE_DIR", str(state))
        for name, value in WAREHOUSE_ENV.items():
            env.setenv(name, value)
        settings = load_settings()
        bootstrap_history(settings, say=lambda _line: None)

        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(str(PROJECT_DIR / "dags" / "churn_retrain.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags[DAG_ID]

        for name, value in WEAK_FIRST_MODEL_ENV.items():
            env.setenv(name, value)
        first = _run(dag, settings, {"reason": REASON})

        for name in WEAK_FIRST_MODEL_ENV:
            env.delenv(name)
        for name, value in PROMOTE_ON_ANY_GAIN_ENV.items():
            env.setenv(name, value)
        approval = _run(dag, settings, {"reason": "needs sign-off", "require_approval": True})
        yield Story(settings, dag, first, approval)


def _numbers_masked(text: str) -> str:
    import re

    return re.sub(r"\d+(?:[.,]\d+)*", "<n>", text)


def test_the_dag_is_documented_for_the_ui(story: Story) -> None:
    """What the UI shows comes from the metadata DB: the serialized DAG and its DagModel."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        serialized = SerializedDagModel.get_dag(DAG_ID, session=session)
        model = session.get(DagModel, DAG_ID)
        tags = {tag.name for tag in model.tags}
    assert serialized is not None and model is not None
    # The doc is rendered from the settings in force where the DAG was parsed: this
    # story's runs change the promotion floor between parses (a weak first model), so the
    # numbers may differ; tests/dags/test_dag_docs.py checks the numbers themselves.
    assert _numbers_masked(serialized.doc_md) == _numbers_masked(story.dag.doc_md)
    assert serialized.doc_md.lstrip().startswith("### churn_retrain")
    assert "announce_promotion" in serialized.doc_md
    assert tags == set(story.dag.tags) and {"churnops", "model"} <= tags
    assert set(serialized.params) == {"reason", "require_approval"}


def test_first_run_promotes_and_announces(story: Story) -> None:
    from churnops.orchestration.assets import MODEL_PROMOTED

    first = story.first
    assert first.state == "success", first.tasks
    assert first.tasks == {
        "monthly_retrain_due": "success",  # a manual run: not held by the monthly gap
        "check_training_data": "success",
        "retrain_and_decide": "success",
        "announce_promotion": "success",
    }
    assert first.xcom["action"] == "promote"
    assert first.xcom["version"] == "1"
    assert first.xcom["champion_before"] is None
    assert first.aliases_after == {"champion": "1"}
    assert first.asset_events == [
        (MODEL_PROMOTED.uri, {"version": "1", "reasons": first.xcom["reasons"]})
    ]


def test_first_decision_is_recorded_with_its_trigger(story: Story) -> None:
    from churnops.registry import mlflow_client, read_audit_log, read_decisions

    decisions = read_decisions(story.settings)
    assert [(d.challenger_version, d.champion_version, d.action) for d in decisions] == [
        ("2", "1", "await_approval"),
        ("1", None, "promote"),
    ]
    first = decisions[-1]
    # The actor names the DAG run and who triggered it (dag.test's user).
    assert first.actor == f"airflow:{DAG_ID}/{story.first.run_id} by dag_test"
    assert first.reasons == story.first.xcom["reasons"]
    # The trigger form's reason travels with the training run (MLflow tag).
    run = mlflow_client(story.settings).get_run(first.run_id)
    assert run.data.tags["trigger"] == REASON
    assert run.data.tags["actor"] == first.actor

    moves = [
        (m.alias, m.from_version, m.to_version, m.action) for m in read_audit_log(story.settings)
    ]
    assert ("champion", None, "1", "promote") in moves
    assert ("challenger", None, "2", "challenger") in moves


def test_required_approval_keeps_the_champion_and_skips_the_announcement(story: Story) -> None:
    approval = story.approval
    assert approval.state == "success", approval.tasks
    assert approval.tasks["retrain_and_decide"] == "success"
    assert approval.tasks["announce_promotion"] == "skipped"
    assert approval.xcom["action"] == "await_approval"
    assert approval.xcom["champion_before"] == approval.xcom["champion_after"] == "1"
    # The rules alone would have promoted: without the parameter this run would promote.
    assert "the rules would promote" in "; ".join(approval.xcom["reasons"])
    assert approval.aliases_after == {"champion": "1", "challenger": "2"}
    assert approval.asset_events == []


def test_a_monthly_run_right_after_these_retrains_would_not_be_due(story: Story) -> None:
    """The registry tells the monthly gate when the newest version was registered."""
    import datetime as dt

    from churnops.registry import newest_version_created_at
    from churnops.triggers import scheduled_retrain_due

    now = dt.datetime.now(dt.UTC)
    newest = newest_version_created_at(story.settings)
    assert newest is not None and dt.timedelta(0) <= now - newest < dt.timedelta(hours=1)
    assert not scheduled_retrain_due(now, newest, story.settings.retraining).due
