"""The retrain: train a challenger, register it, compare it with the champion, act.

load frame -> time split -> train -> evaluate -> log + register a version -> re-score
the champion on the challenger's test window -> decide -> record the decision -> move
the aliases (promote, or keep the new version as challenger) -> a summary in plain words.

The retrain DAG calls :func:`retrain`; so can a person (CLI, notebook).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from churnops.settings import PromotionPolicy, Settings, TrainParams

if TYPE_CHECKING:
    from churnops.evaluate import Decision, ModelMetrics
    from churnops.features.store import FeatureStore
    from churnops.registry import AliasMove, RegisteredVersion
    from churnops.rollout.machine import RolloutState
    from churnops.train.frame import SplitWindows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainOutcome:
    """What one retrain did, and why."""

    registered: RegisteredVersion
    decision: Decision
    challenger_metrics: ModelMetrics
    champion_version: str | None  # the champion it was compared with
    champion_metrics: ModelMetrics | None  # that champion re-scored on the same test window
    windows: SplitWindows
    train_rows: int
    train_positives: int
    train_seconds: float
    seconds: float
    alias_moves: list[AliasMove]
    summary: str

    @property
    def version(self) -> str:
        return self.registered.version

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def champion_after(self) -> str | None:
        return self.version if self.action == "promote" else self.champion_version


def retrain(
    settings: Settings,
    features: FeatureStore,
    *,
    actor: str,
    require_approval: bool | None = None,
    reason: str | None = None,
    as_of_start: dt.date | None = None,
    as_of_end: dt.date | None = None,
    params: TrainParams | None = None,
    policy: PromotionPolicy | None = None,
    follow_up: FollowUp | None = None,
) -> RetrainOutcome:
    """Train, register and judge a challenger; promote it or keep the champion.

    ``actor`` names who or what asked (``airflow:<dag_id>/<run_id>``, ``cli:<user>``);
    ``reason`` why (the trigger's reasons). ``require_approval`` overrides the policy's.
    ``as_of_start``/``as_of_end`` bound the training frame read from ``features`` (default:
    all matured labels). ``follow_up``: the request that started this retrain also
    scheduled a follow-up (its drifted customers have no matured label yet): a challenger
    that does not go on says so, with the count, and when.
    """
    from churnops.evaluate import decide, evaluate_model, score_on
    from churnops.registry import (
        NoChampion,
        load_champion,
        log_training_run,
        promote,
        record_decision,
        set_challenger,
    )
    from churnops.registry.tracking import mlflow_client
    from churnops.train.frame import load_split
    from churnops.train.model import train_model

    began = time.perf_counter()
    params = params or settings.train
    policy = policy or settings.promotion
    if require_approval is not None:
        policy = dataclasses.replace(policy, require_approval=require_approval)

    split = load_split(features, as_of_start, as_of_end, params=params)
    trained = train_model(split, params)
    metrics = evaluate_model(trained, split)
    registered = log_training_run(settings, trained, metrics, split, actor=actor, reason=reason)

    try:
        champion = load_champion(settings)
    except NoChampion:
        champion = None
    champion_metrics = score_on(champion.model, split) if champion else None
    champion_version = champion.version if champion else None
    decision = decide(champion_metrics, metrics, policy)
    state = None
    if settings.rollout.enabled:
        from churnops.deployment.ops import current_rollout

        state = current_rollout(settings)
    decision, running = through_the_rollout(
        decision,
        champion_version,
        state,
        rollout_enabled=settings.rollout.enabled,
        require_approval=settings.promotion.require_approval,
    )
    # After the rollout's rewording, which replaces the rules' last reason.
    decision = with_follow_up(decision, follow_up)
    record_decision(
        settings,
        decision,
        challenger_version=registered.version,
        champion_version=champion_version,
        challenger_metrics=metrics,
        champion_metrics=champion_metrics,
        actor=actor,
        run_id=registered.run_id,
    )
    client = mlflow_client(settings)
    client.set_model_version_tag(registered.name, registered.version, "decision", decision.action)
    client.set_model_version_tag(
        registered.name, registered.version, "decision_reasons", "; ".join(decision.reasons)[:5000]
    )

    moves: list[AliasMove] = []
    if decision.action == "rollout":
        from churnops.deployment.ops import start_rollout

        start_rollout(settings, registered.version, decision.summary(), actor)
    elif running or decision.action in ("wait", "reject"):
        pass  # the running rollout's challenger keeps its alias
    elif decision.action == "promote":
        moves = promote(
            settings,
            registered.version,
            decision.summary(),
            actor,
            run_id=registered.run_id,
            expected_champion=champion_version,
        )
    elif decision.action in ("keep", "await_approval"):
        moves = set_challenger(
            settings, registered.version, decision.summary(), actor, run_id=registered.run_id
        )

    # The registry's retention policy, now that one more version is registered.
    from churnops.registry.retention import archive_stale_versions

    archive_stale_versions(settings, actor)

    outcome = RetrainOutcome(
        registered=registered,
        decision=decision,
        challenger_metrics=metrics,
        champion_version=champion_version,
        champion_metrics=champion_metrics,
        windows=split.windows,
        train_rows=trained.train_rows,
        train_positives=trained.train_positives,
        train_seconds=trained.train_seconds,
        seconds=time.perf_counter() - began,
        alias_moves=moves,
        summary="",
    )
    outcome = dataclasses.replace(outcome, summary=_summary(outcome))
    log.info("%s", outcome.summary)
    return outcome


@dataclass(frozen=True)
class FollowUp:
    """The follow-up retrain the drift request that started this retrain scheduled: when,
    and how many of the drifted customers had a matured label (the request's counts)."""

    on: dt.date
    drifted_labelled: int | None = None
    drifted_customers: int | None = None

    def describe(self) -> str:
        counted = (
            f" ({self.drifted_labelled:,} of the {self.drifted_customers:,} have one)"
            if self.drifted_labelled is not None and self.drifted_customers is not None
            else ""
        )
        return (
            f"the drifted customers have no matured label yet to learn from{counted}: "
            f"follow-up retrain on {self.on}"
        )


def with_follow_up(decision: Decision, follow_up: FollowUp | None) -> Decision:
    """A retrain started by drift whose customers have no matured label yet says so, with
    the request's count, and when the follow-up retrain comes; unless its challenger goes
    on (promoted, or into the rollout): that is why it could not win now."""
    if follow_up is None or decision.action in ("promote", "rollout"):
        return decision
    return dataclasses.replace(decision, reasons=[*decision.reasons, follow_up.describe()])


def through_the_rollout(
    decision: Decision,
    champion_version: str | None,
    state: RolloutState | None,
    *,
    rollout_enabled: bool,
    require_approval: bool,
) -> tuple[Decision, bool]:
    """With the rollout on, a challenger the rules would promote (or would promote after
    approval) against a champion enters the rollout instead (``rollout``), or ``wait``s
    while another rollout (``state``, the model's newest) is active. Returns the decision
    and whether a rollout runs."""
    if not rollout_enabled:
        return decision, False
    running = state is not None and state.active
    if champion_version is None or decision.action not in ("promote", "await_approval"):
        if running and decision.action == "keep":
            reasons = [
                *decision.reasons,
                f"v{state.challenger_version} is in its rollout "  # type: ignore[union-attr]
                "and keeps the challenger alias",
            ]
            return dataclasses.replace(decision, reasons=reasons), True
        return decision, running
    if running:
        assert state is not None
        reasons = [
            *decision.reasons,
            f"the rollout of v{state.challenger_version} is "
            f"{state.status} ({state.phase}): this version waits without an alias; the "
            "next retrain decides again",
        ]
        return dataclasses.replace(decision, action="wait", reasons=reasons), True
    approval = "; a person approves the canary and the promotion" if require_approval else ""
    # The rules' last word ("the challenger becomes champion", or "...requires a person's
    # approval") is what the rollout now does in steps.
    reasons = [
        *decision.reasons[:-1],
        "the rules would promote: enters the phased rollout, shadow from the next "
        f"scoring{approval}",
    ]
    return dataclasses.replace(decision, action="rollout", reasons=reasons), False


def _summary(outcome: RetrainOutcome) -> str:
    """One paragraph for the task log: what was trained, how good, what was decided, why."""
    registered, decision, windows = outcome.registered, outcome.decision, outcome.windows
    champion_version, champion_metrics = outcome.champion_version, outcome.champion_metrics
    m = outcome.challenger_metrics
    text = (
        f"Trained {registered.name} v{registered.version} on {outcome.train_rows:,} rows "
        f"({outcome.train_positives:,} churners, as-of {windows.train_start}..{windows.train_end}) "
        f"in {outcome.train_seconds:.0f} s. On the test window {m.test_start}..{m.test_end} "
        f"({m.test_rows:,} rows) it scores AUC {m.auc:.3f}, recall {m.recall:.3f}, precision "
        f"{m.precision:.3f}, Brier {m.brier:.4f}"
    )
    if m.baseline_auc is not None:
        text += f" (tenure-only baseline AUC {m.baseline_auc:.3f})"
    text += ". "
    if champion_metrics is not None:
        text += (
            f"Champion v{champion_version}, re-scored on the same window: AUC "
            f"{champion_metrics.auc:.3f}, recall {champion_metrics.recall:.3f}, Brier "
            f"{champion_metrics.brier:.4f}. "
        )
    else:
        text += "There was no champion. "
    result = {
        "promote": f"v{registered.version} is the new champion"
        + (
            f"; v{champion_version} is kept as previous_champion for rollback"
            if champion_version
            else ""
        ),
        "keep": f"v{champion_version} stays champion; v{registered.version} is the challenger "
        "(shadow scoring, review)",
        "await_approval": f"v{registered.version} is the challenger, waiting for a person to "
        "approve its promotion (churnops.registry.promote)",
        "reject": f"v{registered.version} stays registered without an alias",
        "rollout": f"v{registered.version} enters the rollout as challenger (shadow first); "
        f"v{champion_version} stays champion until the rollout reaches full",
        "wait": f"v{registered.version} stays registered without an alias; another rollout runs",
    }[decision.action]
    text += f"Decision: {decision.action}, because " + "; ".join(decision.reasons) + f". {result}."
    text += f" ({len(outcome.alias_moves)} alias moves, {outcome.seconds:.0f} s in all; run "
    text += f"{registered.run_id}.)"
    return text
