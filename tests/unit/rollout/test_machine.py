"""The rollout state machine, exhaustively: every phase and status against every kind of
evidence (gates passing, pending, failing; an approval, a rejection, a timeout; a manual
rollback; a night already evaluated), and the serving share it implies."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import re

import pytest

from churnops.rollout import Approval, Evidence, GateResult, RolloutState, serving_share, step
from churnops.rollout.machine import FULL, needs_approval, next_phase, phase_named, phases
from churnops.settings import RolloutSettings, SettingsError, load_settings

pytestmark = pytest.mark.unit

POLICY = RolloutSettings()  # 7 shadow, 5 % canary 7 nights, 25/50/100 % 7 nights, keep 14
START = dt.date(2026, 3, 1)
NIGHT = dt.date(2026, 3, 10)
PASS = GateResult("scores", "pass", ["PSI 0.01"])
PENDING = GateResult("ab_readout", "pending", ["labels mature in 90 days"])
FAIL = GateResult("estimated_performance", "fail", ["estimated AUC 0.70 vs 0.80"])
PHASES = [p.name for p in phases(POLICY)]


def state(phase: str = "shadow", status: str = "running", nights: int = 0, **kw) -> RolloutState:
    return RolloutState(
        rollout_id="r1",
        model_name="churn",
        challenger_version="2",
        champion_version="1",
        phase=phase,
        status=status,  # type: ignore[arg-type]
        phase_started_on=START,
        nights_in_phase=nights,
        last_night=kw.pop("last_night", NIGHT - dt.timedelta(days=1)),
        **kw,
    )


GATE_SETS = {
    "all pass": (PASS,),
    "pass + pending": (PASS, PENDING),
    "one fails": (PASS, FAIL, PENDING),
}


def test_the_phases_follow_the_settings() -> None:
    assert [(p.name, p.share, p.nights) for p in phases(POLICY)] == [
        ("shadow", 0.0, 7),
        ("canary", 0.05, 7),
        ("ramp_25", 0.25, 7),
        ("ramp_50", 0.5, 7),
        ("ramp_100", 1.0, 7),
    ]
    assert [next_phase(POLICY, p) for p in PHASES] == [*PHASES[1:], FULL]
    short = RolloutSettings(shadow_nights=1, canary_share=0.1, canary_nights=2, steps=(0.6, 1.0))
    assert [(p.name, p.share, p.nights) for p in phases(short)] == [
        ("shadow", 0.0, 1),
        ("canary", 0.1, 2),
        ("ramp_60", 0.6, 7),
        ("ramp_100", 1.0, 7),
    ]
    with pytest.raises(ValueError, match="'ramp_33' is not one of shadow, canary"):
        phase_named(POLICY, "ramp_33")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("0.5,0.25,1", "shares must rise"),
        ("0.25,0.5", "the ramp ends at 1"),
        ("0.25,x", "not a comma-separated list"),
        ("0,1", "shares must rise, each in (0, 1]"),
    ],
)
def test_bad_ramp_steps_are_refused_by_name(raw: str, message: str) -> None:
    with pytest.raises(SettingsError, match="CHURNOPS_ROLLOUT_STEPS=.*" + re.escape(message)):
        load_settings({"CHURNOPS_ROLLOUT_STEPS": raw})


@pytest.mark.parametrize(
    ("phase", "gates", "nights_before"),
    list(itertools.product(PHASES, GATE_SETS, [0, 5, 6])),
)
def test_a_running_phase_against_every_kind_of_gates(
    phase: str, gates: str, nights_before: int
) -> None:
    before = state(phase, nights=nights_before)
    t = step(before, Evidence(NIGHT, GATE_SETS[gates]), POLICY)
    if gates == "one fails":
        assert t.action == "rollback"
        assert t.state.status == "rolled_back" and t.state.phase == phase
        assert "gate estimated_performance failed: estimated AUC 0.70 vs 0.80" in t.reasons
        assert serving_share(POLICY, t.state, "2") == 0.0
        return
    target = next_phase(POLICY, phase)
    if nights_before + 1 < 7:
        assert (t.action, t.state.phase, t.state.nights_in_phase) == (
            "stay",
            phase,
            nights_before + 1,
        )
        assert t.reasons[0].startswith(f"{phase} night {nights_before + 1} of 7")
    elif target == "ramp_50":
        assert t.action == "await_approval"
        assert (t.state.status, t.state.pending_phase, t.state.phase) == (
            "awaiting_approval",
            "ramp_50",
            phase,
        )
        # The current phase keeps serving while the approval waits.
        assert serving_share(POLICY, t.state, "2") == phase_named(POLICY, phase).share
    elif target == FULL:
        assert (t.action, t.state.phase, t.state.status, t.state.full_on) == (
            "promote",
            FULL,
            "full",
            NIGHT,
        )
        assert "v2 becomes champion" in t.reasons
    else:
        assert (t.action, t.state.phase, t.state.nights_in_phase) == ("advance", target, 0)
        assert t.state.phase_started_on == NIGHT
        assert serving_share(POLICY, t.state, "2") == phase_named(POLICY, target).share
    assert t.state.last_night == NIGHT
    # A pending gate never holds the ramp back, but the reasons say it is pending.
    assert any("pending" in r for r in t.reasons) == (gates == "pass + pending")


@pytest.mark.parametrize("phase", PHASES)
@pytest.mark.parametrize(
    "answer",
    [
        Approval(True, "ana", dt.datetime(2026, 3, 10, 9), "looks good"),
        Approval(False, "ana", dt.datetime(2026, 3, 10, 9), "not yet"),
        Approval(False, None, None, timed_out=True),
    ],
    ids=["approve", "reject", "timeout"],
)
def test_an_answer_to_a_waiting_approval(phase: str, answer: Approval) -> None:
    target = next_phase(POLICY, phase)
    before = state(phase, "awaiting_approval", nights=7, pending_phase=target, last_night=NIGHT)
    t = step(before, Evidence(NIGHT, approval=answer), POLICY)
    if answer.approved:
        assert t.action == ("promote" if target == FULL else "advance")
        assert t.state.phase == target and t.state.pending_phase is None
        assert f"entering {target}: approved by ana: looks good" in t.reasons
    else:
        assert t.action == "rollback" and t.state.status == "rolled_back"
        words = "counts as Reject" if answer.timed_out else "rejected by ana: not yet"
        assert any(words in r for r in t.reasons)


@pytest.mark.parametrize("gates", list(GATE_SETS))
def test_waiting_for_approval_serves_on_and_a_failed_gate_still_rolls_back(gates: str) -> None:
    before = state("ramp_25", "awaiting_approval", nights=7, pending_phase="ramp_50")
    t = step(before, Evidence(NIGHT, GATE_SETS[gates]), POLICY)
    if gates == "one fails":
        assert t.action == "rollback"
    else:
        assert (t.action, t.state.status, t.state.nights_in_phase) == (
            "stay",
            "awaiting_approval",
            7,
        )
        assert "waiting for approval to enter ramp_50" in t.reasons[0]


@pytest.mark.parametrize(
    ("days", "gates", "action"),
    [
        (3, "all pass", "stay"),
        (3, "pass + pending", "stay"),
        (3, "one fails", "rollback"),  # a late A/B readout, while the old champion is kept
        (14, "all pass", "archive_previous"),
        (20, "pass + pending", "archive_previous"),
    ],
)
def test_full_keeps_the_previous_champion_then_archives_it(
    days: int, gates: str, action: str
) -> None:
    before = state(FULL, "full", full_on=NIGHT - dt.timedelta(days=days))
    t = step(before, Evidence(NIGHT, GATE_SETS[gates]), POLICY)
    assert t.action == action
    status = {"stay": "full", "rollback": "rolled_back", "archive_previous": "finished"}[action]
    assert t.state.status == status
    if action == "rollback":
        assert "v1 (previous champion) serves again" in t.reasons
    # The champion serves everyone at full: no challenger share.
    assert serving_share(POLICY, t.state, "2") == 0.0


@pytest.mark.parametrize(
    ("phase", "status"),
    [*((p, "running") for p in PHASES), ("ramp_25", "awaiting_approval"), (FULL, "full")],
)
def test_a_manual_rollback_in_any_active_phase(phase: str, status: str) -> None:
    before = state(phase, status, full_on=NIGHT if status == "full" else None)
    t = step(
        before, Evidence(NIGHT, (PASS,), rollback_reason="the retention team saw odd calls"), POLICY
    )
    assert t.action == "rollback" and t.state.status == "rolled_back"
    assert t.reasons[0] == "rollback asked for: the retention team saw odd calls"


@pytest.mark.parametrize("status", ["rolled_back", "finished"])
@pytest.mark.parametrize(
    "evidence", [Evidence(NIGHT, (FAIL,)), Evidence(NIGHT, rollback_reason="x")]
)
def test_an_ended_rollout_changes_no_more(status: str, evidence: Evidence) -> None:
    before = state("canary", status)
    t = step(before, evidence, POLICY)
    assert t.action == "none" and t.state == before


@pytest.mark.parametrize("night", [NIGHT - dt.timedelta(days=1), NIGHT - dt.timedelta(days=5)])
def test_a_night_already_evaluated_counts_once(night: dt.date) -> None:
    before = state("canary", nights=3, last_night=NIGHT - dt.timedelta(days=1))
    t = step(before, Evidence(night, (FAIL,)), POLICY)
    assert t.action == "none" and t.state == before and "already evaluated" in t.reasons[0]


@pytest.mark.parametrize(
    ("phase", "require", "expected"),
    [
        ("shadow", False, False),
        ("canary", False, False),
        ("ramp_25", False, False),
        ("ramp_50", False, True),
        ("ramp_100", False, False),
        (FULL, False, False),
        ("shadow", True, False),
        ("canary", True, True),
        ("ramp_50", True, True),
        (FULL, True, True),
    ],
)
def test_which_steps_wait_for_a_person(phase: str, require: bool, expected: bool) -> None:
    assert needs_approval(POLICY, phase, require) is expected


def test_no_business_review_when_its_share_is_zero() -> None:
    assert not needs_approval(dataclasses.replace(POLICY, approval_share=0.0), "ramp_50", False)


def test_with_required_approval_the_canary_and_full_wait() -> None:
    t = step(state("shadow", nights=6), Evidence(NIGHT, (PASS,)), POLICY, require_approval=True)
    assert (t.action, t.state.pending_phase) == ("await_approval", "canary")
    assert serving_share(POLICY, t.state, "2") == 0.0  # still the shadow
    t = step(state("ramp_100", nights=6), Evidence(NIGHT, (PASS,)), POLICY, require_approval=True)
    assert (t.action, t.state.pending_phase) == ("await_approval", FULL)


def test_one_night_per_phase_walks_to_full_with_one_approval() -> None:
    short = RolloutSettings(shadow_nights=1, canary_nights=1, step_nights=1)
    current = state("shadow", last_night=None)
    actions, shares = [], []
    for day in range(8):
        night = START + dt.timedelta(days=day)
        t = step(current, Evidence(night, (PASS, PENDING)), short)
        if t.action == "await_approval":
            actions.append(t.action)
            t = step(t.state, Evidence(night, approval=Approval(True, "ana", None)), short)
        actions.append(t.action)
        current = t.state
        shares.append(serving_share(short, current, "2"))
        if current.status == "full":
            break
    assert actions == ["advance", "advance", "await_approval", "advance", "advance", "promote"]
    assert shares == [0.05, 0.25, 0.5, 1.0, 0.0]  # at full the champion (v2) serves all


@pytest.mark.parametrize(
    ("current", "challenger", "share"),
    [
        (None, "2", 0.0),  # no rollout: the challenger is scored in the shadow only
        (state("canary"), None, 0.0),
        (state("canary"), "3", 0.0),  # another challenger than the rollout's
        (state("canary"), "2", 0.05),
        (state("ramp_25", "awaiting_approval"), "2", 0.25),
        (state("canary", "rolled_back"), "2", 0.0),
        (state("shadow"), "2", 0.0),
    ],
)
def test_serving_share(current: RolloutState | None, challenger: str | None, share: float) -> None:
    assert serving_share(POLICY, current, challenger) == share
