"""The rollout of a challenger, as a pure state machine: state and evidence in, the next
state, the action to carry out and its reasons out.

Phases (``RolloutSettings``)::

    shadow (share 0) -> canary (CHURNOPS_CANARY_SHARE) -> ramp_25 -> ramp_50 -> ramp_100 -> full

- A phase lasts its number of **evaluated nights**: the rollout DAG evaluates each scored
  night once (a night already evaluated changes nothing), so a rerun or a backfill never
  counts a night twice.
- Every night the **gates** (``churnops.rollout.gates``) are read. A failed gate rolls
  back, in any phase, also at full while the old champion is kept. A pending gate (no
  evidence yet: the canary's A/B readout before its labels mature) does not hold the
  ramp back: the ramp goes on on the leading gates, and the readout, once it comes,
  still rolls back if it fails (until the old champion is archived).
- Entering the ``approval_share`` step waits for a person (the seed's business review);
  with ``require_approval`` so do entering the canary (the first customers served) and
  the promotion to full. While it waits, the current phase's share keeps serving. Approve
  enters the next phase; Reject, or no answer in time, rolls back.
- At full the challenger is champion; after ``keep_previous_days`` the old champion's
  ``previous_champion`` alias is removed and the version archived.

Statuses: ``running``, ``awaiting_approval``, ``full`` (promoted, old champion kept),
``finished`` (old champion archived), ``rolled_back``. Only one rollout is active
(``running``, ``awaiting_approval``) at a time (``churnops.deployment.ops``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal

from churnops.settings import RolloutSettings

SHADOW, CANARY, FULL = "shadow", "canary", "full"
Status = Literal["running", "awaiting_approval", "full", "finished", "rolled_back"]
ACTIVE: tuple[str, ...] = ("running", "awaiting_approval")
Action = Literal[
    "none", "stay", "advance", "await_approval", "promote", "rollback", "archive_previous"
]
GateStatus = Literal["pass", "fail", "pending"]


@dataclass(frozen=True)
class Phase:
    name: str
    share: float  # of customers served the challenger
    nights: int


def phases(policy: RolloutSettings) -> list[Phase]:
    """The phases before full, in order."""
    return [
        Phase(SHADOW, 0.0, policy.shadow_nights),
        Phase(CANARY, policy.canary_share, policy.canary_nights),
        *(Phase(f"ramp_{share * 100:g}", share, policy.step_nights) for share in policy.steps),
    ]


def phase_named(policy: RolloutSettings, name: str) -> Phase:
    for phase in phases(policy):
        if phase.name == name:
            return phase
    if name == FULL:
        return Phase(FULL, 1.0, 0)
    raise ValueError(
        f"rollout phase {name!r} is not one of {', '.join(p.name for p in phases(policy))}, "
        "full (the phase settings changed since the rollout started?)"
    )


def next_phase(policy: RolloutSettings, name: str) -> str:
    names = [p.name for p in phases(policy)]
    index = names.index(name)
    return names[index + 1] if index + 1 < len(names) else FULL


@dataclass(frozen=True)
class RolloutState:
    """One rollout, as stored after its latest event (``churnops.rollout.store``)."""

    rollout_id: str
    model_name: str
    challenger_version: str
    champion_version: str | None  # the champion when the rollout started
    phase: str
    status: Status
    phase_started_on: dt.date
    nights_in_phase: int = 0  # evaluated nights in this phase
    last_night: dt.date | None = None  # the newest night evaluated
    pending_phase: str | None = None  # the phase an approval is awaited for
    full_on: dt.date | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for key in ("phase_started_on", "last_night", "full_on"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict on one night, with its numbers."""

    name: str
    status: GateStatus
    reasons: list[str]
    numbers: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Approval:
    """A person's answer (or the timeout's, which counts as Reject)."""

    approved: bool
    by: str | None  # None: nobody answered in time
    at: dt.datetime | None
    reason: str = ""
    timed_out: bool = False

    def describe(self) -> str:
        if self.timed_out:
            return "no answer within the approval timeout (counts as Reject)"
        verdict = "approved" if self.approved else "rejected"
        return f"{verdict} by {self.by or 'unknown'}" + (f": {self.reason}" if self.reason else "")


@dataclass(frozen=True)
class Evidence:
    """What is known of one night: its gates, and any answer or manual rollback."""

    as_of_date: dt.date
    gates: tuple[GateResult, ...] = ()
    approval: Approval | None = None
    rollback_reason: str | None = None  # a person asked for a rollback

    @property
    def failed(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "fail"]

    @property
    def pending(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "pending"]


@dataclass(frozen=True)
class Transition:
    state: RolloutState
    action: Action
    reasons: list[str]

    @property
    def changed(self) -> bool:
        return self.action != "none"


def needs_approval(policy: RolloutSettings, phase: str, require_approval: bool) -> bool:
    """Whether entering ``phase`` waits for a person."""
    if require_approval and phase in (CANARY, FULL):
        return True
    if policy.approval_share <= 0 or phase in (SHADOW, FULL):
        return False
    return phase_named(policy, phase).share == policy.approval_share


def serving_share(
    policy: RolloutSettings, state: RolloutState | None, challenger_version: str | None
) -> float:
    """The share of customers served ``challenger_version`` tonight: its phase's share
    while its rollout is active (also while an approval waits: the current phase goes on),
    else 0 (a challenger outside a rollout is scored in the shadow only).

    The one place the serving mix is decided: the nightly scoring plan and the real-time
    service call it with the latest stored state (``RolloutStore.current``)."""
    if state is None or challenger_version is None or not state.active:
        return 0.0
    if state.challenger_version != str(challenger_version):
        return 0.0
    return phase_named(policy, state.phase).share


def step(
    state: RolloutState,
    evidence: Evidence,
    policy: RolloutSettings,
    *,
    require_approval: bool = False,
) -> Transition:
    """The rollout after ``evidence`` (see the module docstring for the rules)."""
    night = evidence.as_of_date
    if state.status in ("rolled_back", "finished"):
        return Transition(
            state,
            "none",
            [f"the rollout of v{state.challenger_version} ended ({state.status}); nothing to do"],
        )
    if evidence.rollback_reason:
        return _rollback(state, night, [f"rollback asked for: {evidence.rollback_reason}"])

    if evidence.approval is not None and state.status == "awaiting_approval":
        answer = evidence.approval
        target = state.pending_phase or next_phase(policy, state.phase)
        if not answer.approved:
            return _rollback(state, night, [f"entering {target}: {answer.describe()}"])
        return _enter(
            state,
            target,
            night,
            "promote" if target == FULL else "advance",
            [f"entering {target}: {answer.describe()}"],
        )

    if state.last_night is not None and night <= state.last_night:
        return Transition(
            state,
            "none",
            [f"night {night} was already evaluated (latest {state.last_night}); nothing changes"],
        )

    if evidence.failed:
        reasons = [f"gate {g.name} failed: " + "; ".join(g.reasons) for g in evidence.failed]
        if state.status == "full":
            reasons.append(f"v{state.champion_version} (previous champion) serves again")
        return _rollback(state, night, reasons)
    waiting = _pending_words(evidence)

    if state.status == "full":
        assert state.full_on is not None
        days = (night - state.full_on).days
        if days >= policy.keep_previous_days:
            done = dataclasses.replace(state, status="finished", last_night=night)
            return Transition(
                done,
                "archive_previous",
                [
                    f"v{state.challenger_version} has been champion for {days} days "
                    f"(>= {policy.keep_previous_days}): the previous champion is archived"
                ],
            )
        return Transition(
            dataclasses.replace(state, last_night=night),
            "stay",
            [
                f"full since {state.full_on}: the previous champion is kept for rollback "
                f"{policy.keep_previous_days - days} more day(s)",
                *waiting,
            ],
        )

    if state.status == "awaiting_approval":
        return Transition(
            dataclasses.replace(state, last_night=night),
            "stay",
            [
                f"waiting for approval to enter {state.pending_phase}; {state.phase} goes on "
                "serving meanwhile",
                *waiting,
            ],
        )

    phase = phase_named(policy, state.phase)
    nights = state.nights_in_phase + 1
    passed = "gates pass" if not evidence.pending else "leading gates pass"
    if nights < phase.nights:
        counted = dataclasses.replace(state, nights_in_phase=nights, last_night=night)
        return Transition(
            counted, "stay", [f"{phase.name} night {nights} of {phase.nights}: {passed}", *waiting]
        )
    target = next_phase(policy, phase.name)
    complete = f"{phase.name} complete ({nights} of {phase.nights} nights, {passed})"
    if needs_approval(policy, target, require_approval):
        asked = dataclasses.replace(
            state,
            status="awaiting_approval",
            pending_phase=target,
            nights_in_phase=nights,
            last_night=night,
        )
        return Transition(
            asked,
            "await_approval",
            [complete, f"entering {target} needs a person's approval", *waiting],
        )
    return _enter(
        state, target, night, "promote" if target == FULL else "advance", [complete, *waiting]
    )


def _pending_words(evidence: Evidence) -> list[str]:
    return [f"gate {g.name} pending: " + "; ".join(g.reasons) for g in evidence.pending]


def _enter(
    state: RolloutState, phase: str, night: dt.date, action: Action, reasons: list[str]
) -> Transition:
    entered = dataclasses.replace(
        state,
        phase=phase,
        status="full" if phase == FULL else "running",
        phase_started_on=night,
        nights_in_phase=0,
        last_night=night if state.last_night is None else max(night, state.last_night),
        pending_phase=None,
        full_on=night if phase == FULL else state.full_on,
    )
    words = (
        f"v{state.challenger_version} becomes champion"
        if phase == FULL
        else f"v{state.challenger_version} enters {phase} from the next scoring"
    )
    return Transition(entered, action, [*reasons, words])


def _rollback(state: RolloutState, night: dt.date, reasons: list[str]) -> Transition:
    back = dataclasses.replace(
        state,
        status="rolled_back",
        pending_phase=None,
        last_night=night if state.last_night is None else max(night, state.last_night),
    )
    return Transition(
        back,
        "rollback",
        [
            *reasons,
            f"v{state.challenger_version} is rolled back from {state.phase}: the "
            "previous serving mix from the next scoring",
        ],
    )
