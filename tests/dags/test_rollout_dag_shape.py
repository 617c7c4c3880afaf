"""churn_rollout's wiring, parsed under a non-default environment: it runs on the
nightly's published scores, the approval defaults to Reject after the configured
timeout, a Reject still reaches the task that carries it out, and the doc shows the
phases in force."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.integration

ENV = {
    "CHURNOPS_ROLLOUT_SHADOW_NIGHTS": "3",
    "CHURNOPS_CANARY_SHARE": "0.1",
    "CHURNOPS_ROLLOUT_STEPS": "0.3,0.6,1",
    "CHURNOPS_ROLLOUT_APPROVAL_SHARE": "0.6",
    "CHURNOPS_ROLLOUT_APPROVAL_TIMEOUT_HOURS": "5",
}


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        bag = DagBag(str(PROJECT_DIR / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_the_rollout_runs_on_the_published_scores(dags) -> None:
    from churnops.orchestration.assets import SCORES_PUBLISHED

    publish = dags["churn_nightly"].get_task("score.publish")
    assert [outlet.uri for outlet in publish.outlets] == [SCORES_PUBLISHED.uri]
    rollout = dags["churn_rollout"]
    assert rollout.max_active_runs == 1
    condition = rollout.timetable.asset_condition
    assert [asset.uri for asset in condition.objects] == [SCORES_PUBLISHED.uri]


def test_the_approval_and_what_follows_it(dags) -> None:
    from airflow.providers.standard.operators.hitl import ApprovalOperator

    rollout = dags["churn_rollout"]
    approval = rollout.get_task("approval")
    assert isinstance(approval, ApprovalOperator)
    assert approval.defaults == ["Reject"]  # no answer in time counts as Reject
    assert approval.response_timeout == dt.timedelta(hours=5)
    assert set(approval.params) == {"reason"}
    assert approval.downstream_task_ids == {"approved"}  # skipped on Reject...
    apply = rollout.get_task("apply_answer")
    assert apply.upstream_task_ids == {"approved", "evaluate"}  # evaluate: its outcome
    assert apply.trigger_rule == "all_done"  # ...while the answer is still carried out
    gate = rollout.get_task("needs_approval")
    assert gate.ignore_downstream_trigger_rules is True  # no approval: nothing after runs


def test_the_doc_shows_the_phases_in_force(dags) -> None:
    doc = dags["churn_rollout"].doc_md
    assert "shadow (3 nights" in doc and "(10% of customers" in doc
    assert "ramp 30% -> 60% -> 100%" in doc
    assert "enters the 60% share" in doc and "no answer in\n5 h" in doc.replace("   ", "")
