"""Carry the rollout out: start one, evaluate a night, apply an approval or a rollback.

Every change runs under one lock (``rollout.lock`` beside the registry's) and is
recorded in ``ops.rollout_history`` with its reasons and evidence; alias moves go through
``churnops.registry`` (its own lock and audit log, and MLflow version tags).

**One rollout at a time.** A challenger that the champion/challenger decision would
promote while another rollout is active (running, or waiting for approval) does **not**
replace it: it waits, i.e. it stays registered without an alias, its decision recorded
with the reason, and the next retrain (drift, monthly) compares it again against the
champion of that day. Replacing a canary that already serves customers would throw away
its A/B evidence; waiting costs at most one retrain cycle.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnops.rollout.machine import (
    FULL,
    SHADOW,
    Approval,
    Evidence,
    RolloutState,
    Transition,
    phase_named,
    serving_share,
    step,
)
from churnops.rollout.store import RolloutStore
from churnops.settings import Settings

if TYPE_CHECKING:
    from churnops.warehouse import Warehouse

log = logging.getLogger(__name__)


class RolloutError(RuntimeError):
    """A rollout cannot do what was asked (one line for the user)."""


class RolloutRunning(RolloutError):
    """Another rollout is active: a new challenger waits."""


@contextlib.contextmanager
def rollout_lock(settings: Settings) -> Iterator[None]:
    """Serialises rollout changes of this host (the registry lock's sibling: the alias
    moves inside take the registry lock themselves)."""
    from churnops.registry.aliases import exclusive_file_lock
    from churnops.registry.tracking import registry_lock_path

    with exclusive_file_lock(registry_lock_path(settings).with_name("rollout.lock")):
        yield


def rollout_store(settings: Settings, warehouse: Warehouse | None = None) -> RolloutStore:
    from churnops.warehouse import warehouse_for

    return RolloutStore(warehouse or warehouse_for(settings))


def current_rollout(settings: Settings, store: RolloutStore | None = None) -> RolloutState | None:
    return (store or rollout_store(settings)).current(settings.mlflow.registered_model_name)


def start_rollout(
    settings: Settings,
    version: str,
    reason: str,
    actor: str,
    *,
    as_of_date: dt.date | None = None,
    store: RolloutStore | None = None,
) -> RolloutState:
    """Enter ``version`` into the rollout (shadow from the next scoring): it becomes the
    ``challenger``. :class:`RolloutRunning` when another rollout is active."""
    from churnops.registry import current_aliases, set_challenger
    from churnops.registry.aliases import CHAMPION, STAGING, set_lifecycle

    store = store or rollout_store(settings)
    name = settings.mlflow.registered_model_name
    with rollout_lock(settings):
        running = store.current(name)
        if running is not None and running.active:
            raise RolloutRunning(
                f"v{running.challenger_version} is in its rollout ({running.phase}, "
                f"{running.status}): v{version} waits; it stays registered without an alias "
                "and the next retrain decides again"
            )
        champion = current_aliases(settings).get(CHAMPION)
        if champion is None:
            raise RolloutError(f"no champion to roll v{version} out against: promote it instead")
        if champion == str(version):
            raise RolloutError(f"v{version} already is the champion")
        set_challenger(settings, version, f"enters the rollout: {reason}", actor)
        night = as_of_date or dt.date.today()
        state = RolloutState(
            rollout_id=uuid.uuid4().hex[:12],
            model_name=name,
            challenger_version=str(version),
            champion_version=champion,
            phase=SHADOW,
            status="running",
            phase_started_on=night,
        )
        set_lifecycle(settings, str(version), STAGING, rollout_phase=SHADOW)
        store.record(state, night, "start", [reason, f"v{version} enters the shadow"], actor)
    log.info(
        "rollout %s: v%s enters the shadow against champion v%s",
        state.rollout_id,
        version,
        champion,
    )
    return state


@dataclass(frozen=True)
class NightOutcome:
    """What evaluating one night (or an answer) did."""

    before: RolloutState
    transition: Transition
    evidence: Evidence

    @property
    def state(self) -> RolloutState:
        return self.transition.state

    def as_dict(self, settings: Settings) -> dict[str, Any]:
        state = self.state
        return {
            "rollout_id": state.rollout_id,
            "challenger_version": state.challenger_version,
            "champion_version": state.champion_version,
            "night": self.evidence.as_of_date.isoformat(),
            "phase_before": self.before.phase,
            "phase": state.phase,
            "status": state.status,
            "pending_phase": state.pending_phase,
            "share": serving_share(settings.rollout, state, state.challenger_version),
            "action": self.transition.action,
            "reasons": list(self.transition.reasons),
            "gates": [g.as_dict() for g in self.evidence.gates],
            "awaiting_approval": self.transition.action == "await_approval",
        }


def evaluate_night(
    settings: Settings,
    night: dt.date,
    actor: str,
    *,
    warehouse: Warehouse | None = None,
    approval: Approval | None = None,
    rollback_reason: str | None = None,
) -> NightOutcome | None:
    """Read the night's gates (unless this is an answer or a rollback), step the machine,
    carry the transition out and record it. None when no rollout is in progress."""
    from churnops.warehouse import warehouse_for

    warehouse = warehouse or warehouse_for(settings)
    store = RolloutStore(warehouse)
    name = settings.mlflow.registered_model_name
    with rollout_lock(settings):
        state = store.current(name)
        if state is None or state.status in ("rolled_back", "finished"):
            return None
        gates: tuple[Any, ...] = ()
        if (
            approval is None
            and rollback_reason is None
            and (state.last_night is None or night > state.last_night)
        ):
            from churnops.deployment.evidence import night_gates

            gates = night_gates(settings, warehouse, state, night)
        evidence = Evidence(night, gates, approval, rollback_reason)
        transition = step(
            state, evidence, settings.rollout, require_approval=settings.promotion.require_approval
        )
        if transition.changed:
            transition = _carry_out(settings, state, transition, actor, approval)
            store.record(
                transition.state,
                night,
                transition.action,
                transition.reasons,
                approval.by if approval and approval.by else actor,
                [g.as_dict() for g in gates],
            )
    outcome = NightOutcome(state, transition, evidence)
    log.info(
        "rollout of v%s on %s: %s (%s)",
        state.challenger_version,
        night,
        transition.action,
        "; ".join(transition.reasons),
    )
    return outcome


def _carry_out(
    settings: Settings,
    before: RolloutState,
    transition: Transition,
    actor: str,
    approval: Approval | None,
) -> Transition:
    """The registry side of a transition. A promotion that finds another champion than
    the rollout started against (someone promoted meanwhile) rolls back instead."""
    from churnops.registry import StaleDecision, promote, rollback
    from churnops.registry.aliases import (
        STAGING,
        archive_previous,
        clear_challenger,
        set_lifecycle,
    )

    state, reason = transition.state, "; ".join(transition.reasons)
    version = state.challenger_version
    if approval is not None:
        _record_answer(settings, before, approval)
    if transition.action == "rollback":
        if before.status == "full":
            rollback(settings, reason, actor)
        else:
            clear_challenger(settings, version, reason, actor)
    elif transition.action == "promote":
        try:
            promote(settings, version, reason, actor, expected_champion=before.champion_version)
        except StaleDecision as stale:
            clear_challenger(settings, version, str(stale), actor)
            import dataclasses

            return Transition(
                dataclasses.replace(before, status="rolled_back", pending_phase=None),
                "rollback",
                [*transition.reasons, f"not promoted: {stale}"],
            )
    elif transition.action == "archive_previous" and before.champion_version:
        archive_previous(settings, before.champion_version, reason, actor)
    elif transition.action in ("advance", "await_approval"):
        share = phase_named(settings.rollout, state.phase).share
        set_lifecycle(
            settings, version, STAGING, rollout_phase=state.phase, rollout_share=f"{share:g}"
        )
    if state.phase == FULL and transition.action == "promote":
        set_lifecycle(settings, version, "production", rollout_phase=FULL)
    return transition


def _record_answer(settings: Settings, state: RolloutState, approval: Approval) -> None:
    """The answer in the audit log (who, when, why) and on the version's tags."""
    from churnops.registry.aliases import CHALLENGER, set_lifecycle
    from churnops.registry.audit import AliasMove, record_alias_moves

    phase = state.pending_phase or "next phase"
    word = "approve" if approval.approved else "reject"
    at = approval.at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    text = f"{approval.describe()} at {at:%Y-%m-%dT%H:%M:%S}Z (entering {phase})"
    record_alias_moves(
        settings,
        [
            AliasMove(
                settings.mlflow.registered_model_name,
                CHALLENGER,
                state.challenger_version,
                state.challenger_version,
                word,
                text,
                approval.by or "timeout",
            )
        ],
    )
    set_lifecycle(
        settings,
        state.challenger_version,
        "staging",
        **{f"approval_{phase}": text},
    )


def manual_rollback(settings: Settings, reason: str, actor: str) -> NightOutcome | None:
    """Roll the active rollout back (or, at full, the champion back to the previous one)
    with ``reason``; None when no rollout is in progress (the caller then rolls the
    champion back the classic way)."""
    state = current_rollout(settings)
    if state is None or state.status not in ("running", "awaiting_approval", "full"):
        return None
    night = state.last_night or dt.date.today()
    return evaluate_night(settings, night, actor, rollback_reason=reason)


def approval_body(settings: Settings, outcome: dict[str, Any], drift_url: str) -> str:
    """The Markdown a person reads in Required Actions: the two models side by side."""
    from churnops.registry import version_metrics

    challenger, champion = outcome["challenger_version"], outcome["champion_version"]
    rows = [
        ("AUC", "auc", 3),
        ("recall", "recall", 3),
        ("precision", "precision", 3),
        ("Brier", "brier", 4),
    ]
    try:
        metrics = {v: version_metrics(settings, v) for v in (champion, challenger) if v}
    except Exception as exc:  # noqa: BLE001 - the body still shows the gates
        log.warning("metrics for the approval body: %s", exc)
        metrics = {}
    lines = [
        f"**Rollout of v{challenger}**: {outcome['phase']} complete; entering "
        f"**{outcome['pending_phase']}** needs your approval. Approve continues; Reject, or "
        f"no answer in {settings.rollout.approval_timeout_hours:g} h, rolls back.",
        "",
        f"| metric (own test window) | champion v{champion} | challenger v{challenger} |",
        "| --- | --- | --- |",
    ]
    for label, key, digits in rows:
        values = [getattr(metrics.get(v), key, None) for v in (champion, challenger)]
        cells = [f"{x:.{digits}f}" if isinstance(x, float) else "n/a" for x in values]
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    lines += ["", f"**Gates on {outcome['night']}:**", ""]
    for gate in outcome["gates"]:
        lines.append(f"- `{gate['name']}` **{gate['status']}**: " + "; ".join(gate["reasons"]))
    lines += ["", f"[Drift reports]({drift_url})"]
    return "\n".join(lines)


def rollback_model(settings: Settings, reason: str, actor: str) -> list[str]:
    """What ``churnops rollback`` and ``churn_model_rollback`` do: roll the rollout in
    progress back when there is one (at full: the champion back to the previous one),
    else give the champion alias back to ``previous_champion``. Lines for the log."""
    from churnops.registry import rollback

    outcome = manual_rollback(settings, reason, actor)
    if outcome is None:
        return [str(move) for move in rollback(settings, reason, actor)]
    return [
        f"rollout of v{outcome.state.challenger_version}: {outcome.transition.action} "
        f"({'; '.join(outcome.transition.reasons)})"
    ]


def rollout_status(settings: Settings, store: RolloutStore) -> dict[str, Any] | None:
    """The newest rollout for ``churnops status``: phase, share, nights in the phase, what
    comes next and on which gate, and the newest gates' evidence. None: never any."""
    from churnops.rollout.machine import needs_approval, next_phase

    name = settings.mlflow.registered_model_name
    state = store.current(name)
    if state is None:
        return None
    policy = settings.rollout
    history = store.history(name, state.rollout_id)
    evaluated = [event for event in history if event["evidence"]]
    gates = evaluated[-1]["evidence"] if evaluated else []
    if state.status == "running":
        phase = phase_named(policy, state.phase)
        target = next_phase(policy, state.phase)
        left = max(phase.nights - state.nights_in_phase, 0)
        nxt = f"{target} after {left} more night(s) with passing gates" + (
            " and a person's approval"
            if needs_approval(policy, target, settings.promotion.require_approval)
            else ""
        )
    elif state.status == "awaiting_approval":
        nxt = f"{state.pending_phase} once approved (Browse -> Required Actions)"
    elif state.status == "full":
        assert state.full_on is not None
        nxt = (
            f"archive v{state.champion_version} (previous champion) "
            f"{policy.keep_previous_days} days after {state.full_on}; a late A/B readout "
            "can still roll back"
        )
    else:
        nxt = "nothing: the rollout ended"
    pending = [g["name"] for g in gates if g["status"] == "pending"]
    return {
        **state.as_dict(),
        "share": serving_share(policy, state, state.challenger_version),
        "phase_nights": phase_named(policy, state.phase).nights,
        "next": nxt,
        "next_gate": (
            "approval"
            if state.status == "awaiting_approval"
            else ", ".join(pending)
            if pending
            else "every gate, each night"
        ),
        "gates": gates,
        "last_action": history[-1]["action"] if history else None,
        "last_reasons": history[-1]["reasons"] if history else [],
    }
