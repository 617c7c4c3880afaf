"""The phased rollout, end to end: ``churn_rollout`` run for real with ``dag.test()`` after
each simulated night's scoring, one night per phase.

One warehouse for the module: 3,000 customers over 460 days under ``price_increase`` from
2025-07-03 (concept drift: billing starts to matter much more), the recipe of
tests/integration/test_training_registry.py. Each night is scored with
``churnops.score.score_day`` (the nightly's plan/shard/publish code in one process: the
nightly's ingest and dbt would add minutes and nothing to the rollout) and then evaluated
by ``churn_rollout`` through ``dag.test()``. Approvals are answered by a thread through
the Airflow API's own HITL response handler, as the Required Actions page does.

1. **A better challenger walks to full.** v1 is trained before the change; the retrain on
   matured post-change labels (v2) wins on the same test window and, the rollout being
   on, enters it instead of replacing the champion: shadow -> canary -> 25 % -> (approved
   by ana) 50 % -> 100 % -> full -> the old champion archived.
2. **A regressing challenger is rolled back at canary.** The pre-change model (v1) is put
   into a rollout against v2 on nights whose 90-day labels have matured (December 2025),
   so the canary's A/B readout is there on its first canary night: it catches fewer
   churners per contact than control and rolls back; the next scoring serves v2 alone.
3. **A rejected approval rolls back.** With ``CHURNOPS_PROMOTION_REQUIRE_APPROVAL`` the
   canary waits for a person; ana rejects it.
4. **Two concurrent promotions** (the rollout reaching full and a person promoting another
   version at the same moment) leave one champion, and the audit log replays to exactly
   the registry's aliases.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from churnops.settings import Settings, load_settings
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.e2e

DAG_ID = "churn_rollout"
SCENARIO_START = dt.date(2025, 7, 3)
PRE_CHANGE_END = dt.date(2025, 7, 20)
ENV = {
    "CHURNOPS_SIM_CUSTOMERS": "3000",
    "CHURNOPS_SIM_DAYS": "460",  # 2025-01-01 .. 2026-04-05
    "CHURNOPS_SIM_SCENARIO": "price_increase",
    "CHURNOPS_SIM_SCENARIO_START": SCENARIO_START.isoformat(),
    "CHURNOPS_TRAIN_FULL_WINDOWS_ONLY": "false",
    "CHURNOPS_TASK_RETRIES": "0",
    "CHURNOPS_ROLLOUT_ENABLED": "true",
    # One night per phase; the old champion kept one day.
    "CHURNOPS_ROLLOUT_SHADOW_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_CANARY_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_STEP_NIGHTS": "1",
    "CHURNOPS_ROLLOUT_KEEP_PREVIOUS_DAYS": "1",
    # A canary of 30 % of 3,000 customers gives the readout enough contacts in one night.
    "CHURNOPS_CANARY_SHARE": "0.3",
    "CHURNOPS_ROLLOUT_MIN_AB_CONTACTS": "10",
}
BASELINE_NIGHT = dt.date(2026, 3, 27)
WALK_NIGHTS = [BASELINE_NIGHT + dt.timedelta(days=i) for i in range(1, 7)]  # 03-28 .. 04-02
MATURED_NIGHTS = [dt.date(2025, 12, 2), dt.date(2025, 12, 3), dt.date(2025, 12, 4)]
REJECT_NIGHT = dt.date(2026, 4, 3)
RACE_NIGHT = dt.date(2026, 4, 4)


@dataclass
class Night:
    night: dt.date
    scored: dict[str, Any]
    state: str
    tasks: dict[str, str | None]
    evaluation: dict[str, Any]
    answer: dict[str, Any] | None
    aliases: dict[str, str]


@dataclass
class Story:
    settings: Settings
    retrain: Any
    baseline: dict[str, Any]
    walk: list[Night] = field(default_factory=list)
    regress: list[Night] = field(default_factory=list)
    after_regress: dict[str, Any] = field(default_factory=dict)
    reject: list[Night] = field(default_factory=list)
    hitl: list[dict[str, Any]] = field(default_factory=list)
    race: dict[str, Any] = field(default_factory=dict)
    v1_tags_after_walk: dict[str, str] = field(default_factory=dict)


class Responder(threading.Thread):
    """Answers the next approval of ``churn_rollout`` the way the Required Actions page
    does: through the Airflow API's HITL response handler, as a signed-in user."""

    def __init__(self, option: str, user: str, reason: str, seen: list[dict[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.option, self.user, self.reason, self.seen = option, user, reason, seen
        self.done = threading.Event()

    def run(self) -> None:
        from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
        from airflow.api_fastapi.core_api.datamodels.hitl import UpdateHITLDetailPayload
        from airflow.api_fastapi.core_api.routes.public.hitl import update_hitl_detail
        from airflow.models.hitl import HITLDetail
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session
        from airflow.utils.state import TaskInstanceState
        from sqlalchemy import select

        deadline = time.monotonic() + 120
        while not self.done.is_set() and time.monotonic() < deadline:
            with create_session() as session:
                waiting = session.execute(
                    select(TaskInstance, HITLDetail)
                    .join(HITLDetail, HITLDetail.ti_id == TaskInstance.id)
                    .where(
                        TaskInstance.dag_id == DAG_ID,
                        TaskInstance.task_id == "approval",
                        TaskInstance.state == TaskInstanceState.AWAITING_INPUT,
                        HITLDetail.responded_at.is_(None),
                    )
                ).first()
                if waiting is not None:
                    ti, detail = waiting
                    self.seen.append(
                        {
                            "subject": detail.subject,
                            "body": detail.body,
                            "options": list(detail.options),
                            "defaults": list(detail.defaults or []),
                        }
                    )
                    update_hitl_detail(
                        dag_id=DAG_ID,
                        dag_run_id=ti.run_id,
                        task_id="approval",
                        update_hitl_detail_payload=UpdateHITLDetailPayload(
                            chosen_options=[self.option], params_input={"reason": self.reason}
                        ),
                        user=SimpleAuthManagerUser(username=self.user, role="admin"),
                        session=session,
                    )
                    return
            time.sleep(0.5)


def _evaluate(dag: Any, settings: Settings, night: dt.date) -> Night:
    from churnops.registry import current_aliases
    from churnops.score.nightly import score_day
    from churnops.stores import stores_for

    stores = stores_for(settings)
    scored = score_day(settings, stores.features, stores.scoring, night).as_dict()
    scored["canary_rows"] = stores.warehouse.rows(
        "SELECT canary_rows FROM scoring.scoring_runs WHERE as_of_date = ? "
        "ORDER BY finished_at DESC LIMIT 1",
        [night],
    )[0]["canary_rows"]
    run = dag.test(run_conf={"as_of_date": night.isoformat()})
    instances = {ti.task_id: ti for ti in run.get_task_instances()}
    evaluation = instances["evaluate"].xcom_pull(task_ids="evaluate") or {}
    answer = (
        instances["apply_answer"].xcom_pull(task_ids="apply_answer")
        if instances["apply_answer"].state == "success"
        else None
    )
    return Night(
        night,
        scored,
        run.state,
        {task_id: ti.state for task_id, ti in instances.items()},
        evaluation,
        answer,
        current_aliases(settings),
    )


def _with_answer(
    dag: Any, settings: Settings, night: dt.date, story: Story, option: str, reason: str
) -> Night:
    responder = Responder(option, "ana", reason, story.hitl)
    responder.start()
    try:
        return _evaluate(dag, settings, night)
    finally:
        responder.done.set()
        responder.join(5)


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path):
    from airflow.dag_processing.dagbag import DagBag

    from churnops.deployment.ops import current_rollout, start_rollout
    from churnops.pipeline import bootstrap_history
    from churnops.retrain import retrain
    from churnops.score.nightly import score_day
    from churnops.stores import stores_for

    state = tmp_path_factory.mktemp("rollout-state")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURNOPS_STATE_DIR", str(state))
        for name, value in ENV.items():
            env.setenv(name, value)
        settings = load_settings()
        bootstrap_history(settings, say=lambda _line: None)
        stores = stores_for(settings)
        first = retrain(
            settings, stores.features, actor="pytest", reason="first", as_of_end=PRE_CHANGE_END
        )
        assert first.action == "promote", first.summary
        baseline = score_day(settings, stores.features, stores.scoring, BASELINE_NIGHT).as_dict()
        outcome = retrain(
            settings,
            stores.features,
            actor="pytest",
            reason="price change",
            as_of_start=SCENARIO_START,
        )
        story = Story(settings, outcome, baseline)

        bag = DagBag(str(PROJECT_DIR / "dags" / "churn_rollout.py"))
        assert not bag.import_errors, bag.import_errors
        dag = bag.dags[DAG_ID]

        # 1. The better challenger, one night per phase.
        for night in WALK_NIGHTS:
            before = current_rollout(settings)
            if before and before.phase == "ramp_25":
                story.walk.append(
                    _with_answer(
                        dag, settings, night, story, "Approve", "the business review signs off"
                    )
                )
            else:
                story.walk.append(_evaluate(dag, settings, night))

        from churnops.registry import mlflow_client

        story.v1_tags_after_walk = dict(
            mlflow_client(settings).get_model_version("churn", "1").tags
        )

        # 2. The pre-change model against the new champion, on nights with matured labels.
        start_rollout(
            settings, "1", "e2e: a regressing challenger", "pytest", as_of_date=MATURED_NIGHTS[0]
        )
        story.regress = [_evaluate(dag, settings, night) for night in MATURED_NIGHTS[:2]]
        story.after_regress = score_day(
            settings, stores.features, stores.scoring, MATURED_NIGHTS[2]
        ).as_dict()

        # 3. A person rejects the canary.
        env.setenv("CHURNOPS_PROMOTION_REQUIRE_APPROVAL", "true")
        third = retrain(
            settings,
            stores.features,
            actor="pytest",
            reason="pre-change again",
            as_of_end=PRE_CHANGE_END,
        )
        if third.action != "rollout":  # kept (not better on its window): entered by hand
            start_rollout(
                settings, third.version, "e2e: to be rejected", "pytest", as_of_date=REJECT_NIGHT
            )
        story.reject = [
            _with_answer(
                dag, settings, REJECT_NIGHT, story, "Reject", "not before the price campaign ends"
            )
        ]
        env.delenv("CHURNOPS_PROMOTION_REQUIRE_APPROVAL")

        # 4. The race: a rollout reaching full while a person promotes another version.
        story.race = _race(settings, third.version)
        yield story


def _race(settings: Settings, version: str) -> dict[str, Any]:
    """Put ``version`` at the end of its ramp (the store's state, as the machine would
    have left it), then run its promoting evaluation and a person's promotion of v1 at
    the same moment."""
    import dataclasses

    from churnops.deployment.ops import evaluate_night, rollout_store, start_rollout
    from churnops.registry import RegistryError, current_aliases, promote
    from churnops.rollout.machine import RolloutState
    from churnops.score.nightly import score_day
    from churnops.stores import stores_for

    started = start_rollout(settings, version, "e2e: the race", "pytest", as_of_date=RACE_NIGHT)
    store = rollout_store(settings)
    at_the_end: RolloutState = dataclasses.replace(
        started, phase="ramp_100", nights_in_phase=0, last_night=RACE_NIGHT
    )
    store.record(at_the_end, RACE_NIGHT, "advance", ["e2e: the ramp's last step"], "pytest")
    next_night = RACE_NIGHT + dt.timedelta(days=1)
    stores = stores_for(settings)
    score_day(settings, stores.features, stores.scoring, next_night)
    champion = current_aliases(settings)["champion"]
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def rollout() -> None:
        barrier.wait()
        try:
            results["rollout"] = evaluate_night(settings, next_night, "pytest:rollout")
        except Exception as error:  # noqa: BLE001 - recorded for the test to assert on
            results["rollout"] = error

    def person() -> None:
        barrier.wait()
        try:
            results["person"] = promote(
                settings, "1", "e2e: by hand", "bob", expected_champion=champion
            )
        except RegistryError as error:
            results["person"] = error

    threads = [threading.Thread(target=rollout), threading.Thread(target=person)]
    # One connection held open meanwhile: two threads of one process opening the DuckDB
    # file at the same instant collide in DuckDB's instance cache (processes, as in
    # Airflow, take the warehouse pool's one slot instead). The race is the registry's.
    with stores.warehouse.session():
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    results["champion_before"] = champion
    results["aliases"] = current_aliases(settings)
    return results


# ----------------------------------------------------------------------------- 1. walk
def test_the_retrain_on_matured_labels_wins_and_enters_the_rollout(story: Story) -> None:
    outcome = story.retrain
    assert outcome.action == "rollout", outcome.summary
    assert outcome.challenger_metrics.auc - outcome.champion_metrics.auc > 0.02
    assert outcome.champion_after == "1"
    assert outcome.decision.reasons[-1] == (
        "the rules would promote: enters the phased rollout, shadow from the next scoring"
    )
    assert "v2 enters the rollout as challenger (shadow first)" in outcome.summary


def test_the_better_challenger_walks_every_phase_to_full(story: Story) -> None:
    steps = [
        (n.evaluation["phase_before"], n.evaluation["action"], n.evaluation["phase"])
        for n in story.walk
    ]
    assert steps == [
        ("shadow", "advance", "canary"),
        ("canary", "advance", "ramp_25"),
        ("ramp_25", "await_approval", "ramp_25"),
        ("ramp_50", "advance", "ramp_100"),
        ("ramp_100", "promote", "full"),
        ("full", "archive_previous", "full"),
    ]
    assert all(n.state == "success" for n in story.walk), [n.tasks for n in story.walk]
    # The nightly plan served the share the rollout had set after the night before.
    rows = [n.scored["rows_scored"] for n in story.walk]
    canary = [n.scored["canary_rows"] / r for n, r in zip(story.walk, rows, strict=True)]
    assert canary[0] == 0  # shadow
    assert 0.25 < canary[1] < 0.35  # canary: 30 %
    assert 0.2 < canary[2] < 0.3 and 0.45 < canary[3] < 0.55 and canary[4] == 1.0
    assert canary[5] == 0  # full: v2 is the champion and serves everyone
    assert [n.scored["champion_version"] for n in story.walk] == ["1"] * 5 + ["2"]


def test_the_fifty_percent_step_waited_for_ana_and_her_answer_is_audited(story: Story) -> None:
    from churnops.registry import mlflow_client, read_audit_log

    waited = story.walk[2]
    assert waited.tasks == {
        "evaluate": "success",
        "needs_approval": "success",
        "approval": "success",
        "approved": "success",
        "apply_answer": "success",
    }
    assert waited.answer is not None and waited.answer["phase"] == "ramp_50"
    request = story.hitl[0]
    assert request["subject"] == "churnops rollout: v2 enters ramp_50?"
    assert request["options"] == ["Approve", "Reject"] and request["defaults"] == ["Reject"]
    body = request["body"]
    assert "| metric (own test window) | champion v1 | challenger v2 |" in body
    assert "| AUC |" in body and "[Drift reports](/plugin/churnops-drift-reports)" in body
    assert "`scores` **pass**" in body
    approvals = [m for m in read_audit_log(story.settings) if m.action == "approve"]
    assert [(m.actor, m.to_version) for m in approvals] == [("ana", "2")]
    assert "approved by ana: the business review signs off" in approvals[0].reason
    tags = mlflow_client(story.settings).get_model_version("churn", "2").tags
    assert tags["approval_ramp_50"].startswith("approved by ana: the business review signs off")


def test_at_full_the_challenger_is_champion_and_the_old_one_archived(story: Story) -> None:
    from churnops.registry import mlflow_client

    promoted, archived = story.walk[4], story.walk[5]
    assert promoted.aliases == {"champion": "2", "previous_champion": "1"}
    assert archived.aliases == {"champion": "2"}
    assert story.v1_tags_after_walk["lifecycle"] == "archived"
    assert "archived_at" in story.v1_tags_after_walk
    client = mlflow_client(story.settings)
    assert client.get_model_version("churn", "2").tags["lifecycle"] in {"production", "retired"}
    # Nothing was deleted: every version that served is still in the registry.
    assert {str(v.version) for v in client.search_model_versions("name='churn'")} >= {"1", "2"}


def test_the_gates_carry_their_numbers(story: Story) -> None:
    shadow = {g["name"]: g for g in story.walk[0].evaluation["gates"]}
    assert set(shadow) == {"scoring", "scores", "estimated_performance", "ab_readout"}
    assert shadow["scores"]["status"] == "pass" and shadow["scores"]["numbers"]["rows"] > 2000
    assert shadow["estimated_performance"]["status"] == "pass"
    assert shadow["ab_readout"]["status"] == "pending"  # March nights: labels not matured
    assert "baseline_seconds" in shadow["scoring"]["numbers"]


# ----------------------------------------------------------------------------- 2. regress
def test_a_regressing_challenger_is_rolled_back_at_canary(story: Story) -> None:
    shadow, canary = story.regress
    assert (shadow.evaluation["action"], shadow.evaluation["phase"]) == ("advance", "canary")
    assert canary.evaluation["phase_before"] == "canary"
    assert canary.evaluation["action"] == "rollback"
    readout = {g["name"]: g for g in canary.evaluation["gates"]}["ab_readout"]
    assert readout["status"] == "fail"
    assert readout["numbers"]["lift"]["value"] < 0.02
    assert "churners caught per contact" in readout["reasons"][0]
    assert canary.aliases == {"champion": "2"}  # the challenger lost its alias
    # The next scoring serves the previous mix: v2 alone, no shadow.
    assert story.after_regress["champion_version"] == "2"
    assert story.after_regress["challenger_version"] is None
    assert story.after_regress["shadow_rows"] == 0


# ----------------------------------------------------------------------------- 3. reject
def test_a_rejected_approval_rolls_back(story: Story) -> None:
    from churnops.registry import mlflow_client, read_audit_log

    (night,) = story.reject
    assert night.evaluation["action"] == "await_approval"
    assert night.evaluation["pending_phase"] == "canary"
    assert night.tasks["approved"] == "skipped" and night.tasks["apply_answer"] == "success"
    assert night.answer is not None and night.answer["status"] == "rolled_back"
    assert any(
        "rejected by ana: not before the price campaign ends" in r for r in night.answer["reasons"]
    ), night.answer["reasons"]
    version = night.evaluation["challenger_version"]
    assert "challenger" not in night.aliases
    rejects = [m for m in read_audit_log(story.settings) if m.action == "reject"]
    assert [(m.actor, m.to_version) for m in rejects] == [("ana", version)]
    tags = mlflow_client(story.settings).get_model_version("churn", version).tags
    assert tags["lifecycle"] == "retired" and "rolled_back" in tags


# ----------------------------------------------------------------------------- 4. race
def test_two_concurrent_promotions_leave_one_champion_and_a_complete_audit(story: Story) -> None:
    from churnops.deployment.ops import NightOutcome
    from churnops.registry import StaleDecision, read_audit_log

    race = story.race
    rollout, person = race["rollout"], race["person"]
    assert isinstance(rollout, NightOutcome), rollout
    # Exactly one of the two promotions went through.
    if isinstance(person, StaleDecision):
        assert rollout.transition.action == "promote"
        assert race["aliases"]["champion"] == rollout.state.challenger_version
    else:
        assert rollout.transition.action == "rollback"
        assert "not promoted" in rollout.transition.reasons[-1]
        assert race["aliases"]["champion"] == "1"
    # The audit log, replayed from the start, gives exactly the registry's aliases.
    replayed: dict[str, str] = {}
    for move in reversed(read_audit_log(story.settings)):
        assert (
            replayed.get(move.alias) == move.from_version or move.from_version == move.to_version
        ), move
        if move.to_version is None:
            replayed.pop(move.alias, None)
        else:
            replayed[move.alias] = move.to_version
    assert replayed == race["aliases"]


def test_status_shows_the_rollout(story: Story) -> None:
    from churnops.status import collect_status, render_status

    report = collect_status(story.settings)
    rollout = report["rollout"]
    assert rollout is not None and rollout["status"] in {"full", "rolled_back"}
    text = render_status(report)
    assert "Rollout          : v" in text and "gate to watch" in text
