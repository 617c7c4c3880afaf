"""A retrain's decision as the registry records it: the rollout's rewording of the rules'
last word, and the follow-up note of a drift retrain whose customers had no label yet."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.evaluate import Decision
from churnops.retrain import FollowUp, through_the_rollout, with_follow_up
from churnops.rollout.machine import RolloutState

pytestmark = pytest.mark.unit

FOLLOW_UP = FollowUp(dt.date(2026, 9, 30), drifted_labelled=3, drifted_customers=3606)
RULES = ["AUC 0.812 vs champion 0.790: +0.022 > margin 0.020"]


def decision(action: str, last_word: str) -> Decision:
    return Decision(
        action=action, reasons=[*RULES, last_word], challenger_auc=0.812, champion_auc=0.79
    )  # type: ignore[arg-type]


def running_rollout() -> RolloutState:
    return RolloutState(
        rollout_id="r1",
        model_name="churn",
        challenger_version="2",
        champion_version="1",
        phase="canary",
        status="running",
        phase_started_on=dt.date(2026, 7, 1),
    )


def test_an_approval_decision_enters_the_rollout_and_its_rule_line_is_replaced() -> None:
    awaiting = decision("await_approval", "the challenger becomes champion once a person approves")
    rolled, running = through_the_rollout(
        awaiting, "1", None, rollout_enabled=True, require_approval=True
    )
    assert (rolled.action, running) == ("rollout", False)
    assert rolled.reasons[: len(RULES)] == RULES
    assert "once a person approves" not in " ".join(rolled.reasons)
    assert rolled.reasons[-1].endswith("a person approves the canary and the promotion")
    # Going on into the rollout, it gets no follow-up note (it did not lose for lack of labels).
    assert with_follow_up(rolled, FOLLOW_UP) == rolled


def test_the_follow_up_note_comes_after_the_rollouts_words_and_keeps_them() -> None:
    """The bug this guards: the note was added first, and the rollout's rewording then
    dropped it as if it were the rules' last word."""
    kept = decision(
        "keep", "the champion stays: the challenger is not better by more than 0.020 AUC"
    )
    waiting, running = through_the_rollout(
        kept, "1", running_rollout(), rollout_enabled=True, require_approval=False
    )
    assert running and waiting.action == "keep"
    noted = with_follow_up(waiting, FOLLOW_UP)
    assert noted.reasons[:-1] == waiting.reasons
    assert "v2 is in its rollout" in noted.reasons[-2]
    assert noted.reasons[-1] == (
        "the drifted customers have no matured label yet to learn from (3 of the 3,606 have "
        "one): follow-up retrain on 2026-09-30"
    )


@pytest.mark.parametrize(
    ("action", "noted"), [("keep", True), ("reject", True), ("promote", False)]
)
def test_without_the_rollout_only_a_challenger_that_stays_back_gets_the_note(
    action: str, noted: bool
) -> None:
    rules = decision(action, "the rules' last word")
    same, running = through_the_rollout(
        rules, "1", running_rollout(), rollout_enabled=False, require_approval=False
    )
    assert (same, running) == (rules, False)
    after = with_follow_up(same, FOLLOW_UP)
    assert (after.reasons[-1].endswith("follow-up retrain on 2026-09-30")) is noted
    assert with_follow_up(same, None) == same


def test_a_follow_up_without_the_requests_counts_still_names_its_night() -> None:
    bare = FollowUp(dt.date(2026, 9, 30))
    assert bare.describe() == (
        "the drifted customers have no matured label yet to learn from: follow-up retrain on "
        "2026-09-30"
    )
