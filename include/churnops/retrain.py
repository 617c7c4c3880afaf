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
    follow_up_on: dt.date | None = None,
) -> RetrainOutcome:
    """Train, register and judge a challenger; promote it or keep the champion.

    ``actor`` names who or what asked (``airflow:<dag_id>/<run_id>``, ``cli:<user>``);
    ``reason`` why (the trigger's reasons). ``require_approval`` overrides the policy's.
    ``as_of_start``/``as_of_end`` bound the training frame read from ``features`` (default:
    all matured labels). ``follow_up_on``: the request that started this retrain also
    scheduled a follow-up (its drifted customers have no matured label yet): a challenger
    that is not promoted says so, and when.
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
    if follow_up_on is not None and decision.action != "promote":
        decision = dataclasses.replace(
            decision,
            reasons=[
                *decision.reasons,
                "the drifted customers have no matured label yet to learn from: follow-up "
                f"retrain on {follow_up_on}",
            ],
        )
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
    if decision.action == "promote":
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
    }[decision.action]
    text += f"Decision: {decision.action}, because " + "; ".join(decision.reasons) + f". {result}."
    text += f" ({len(outcome.alias_moves)} alias moves, {outcome.seconds:.0f} s in all; run "
    text += f"{registered.run_id}.)"
    return text
