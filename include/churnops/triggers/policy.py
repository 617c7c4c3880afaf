"""The retraining policy: a pure function from tonight's monitoring signals to a decision
with its reasons (seed defaults in ``churnops.settings.RetrainingPolicy``).

Any one trigger fires:

- **performance**: the served scores' AUC on the latest matured cohort is below the floor;
- **estimated performance**: the champion's AUC estimated from each night's scores alone
  (CBPE, ``churnops.estimation``) has been below the same floor on the last
  ``estimate_nights`` estimated nights, tonight included: the same rule, 90 days sooner.
  One night is not enough: a night's estimate has a sampling error;
- **drift**: at least ``max_drifted_features`` features drifted from the champion's
  training data tonight;
- **new labels**: more than ``max_new_labels`` churn outcomes have matured since the
  champion's training data ends. Every active customer gets a (mostly negative) label every
  day, so counting label rows would fire daily at any scale; the churn outcomes are the
  new information a retrain would learn from (at the seed's 500,000 customers and 8 %
  churn in 90 days, 10,000 of them take about three weeks).

Drift alone does not say a retrain can learn anything: a campaign's new customers have no
matured label for 90 days. When drift fires and fewer than ``min_new_labels_in_drift`` of
the drifted customers have a matured label after the champion's cutoff, the request says
so and schedules a **follow-up** for the night tonight's labels mature; that night fires
with that reason, whatever its drift and the cooldown say.

The monthly retrain is the retrain DAG's own schedule, not a trigger here. Requests are
at least ``cooldown_days`` apart: one drift episode lasts many nights, and the retrain it
caused needs time to land and to be judged. The cooldown looks both ways from the night
(the nearest other night that fired, earlier or later), so a backfill that reprocesses
nights out of order, or re-runs an old one, cannot request a second retrain for the same
episode.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from churnops.settings import LABEL_HORIZON_DAYS, RetrainingPolicy


@dataclass(frozen=True)
class RetrainSignals:
    """What monitoring knows on night ``as_of_date``."""

    as_of_date: dt.date
    champion_version: str | None
    drifted_features: tuple[str, ...] = ()
    latest_cohort: dt.date | None = None
    latest_cohort_auc: float | None = None
    new_churn_labels: int = 0
    labels_since: dt.date | None = None  # the champion's training data cutoff
    # The nearest other night (earlier or later) whose evaluation requested a retrain.
    nearest_request: dt.date | None = None
    # The champion's latest estimated nights up to tonight, newest first: (night, AUC).
    estimated_aucs: tuple[tuple[dt.date, float], ...] = ()
    # Measured on a night whose drift fires: the drifted customers, and how many of them
    # have a matured label after the champion's cutoff (beyond what chance puts in).
    drifted_customers: int | None = None
    drifted_labelled: int | None = None
    # A follow-up retrain due tonight: why (scheduled by an earlier drift night).
    follow_up_due: str | None = None


@dataclass(frozen=True)
class RetrainDecision:
    fire: bool  # request a retrain now
    triggered: bool  # some trigger held (fire, or held back by the cooldown)
    reasons: tuple[str, ...]
    held_by_cooldown: bool
    # A follow-up retrain this request schedules (its drifted customers' labels mature).
    follow_up_on: dt.date | None = None
    follow_up_reason: str | None = None  # the reason that scheduled it

    def summary(self) -> str:
        if self.fire:
            return "retrain requested: " + "; ".join(self.reasons)
        if self.held_by_cooldown:
            return "retrain not requested (cooldown): " + "; ".join(self.reasons)
        return "no retrain needed: " + "; ".join(self.reasons)


def decide_retraining(signals: RetrainSignals, policy: RetrainingPolicy) -> RetrainDecision:
    """Fire when any trigger holds and no other night within the cooldown requested one."""
    if signals.champion_version is None:
        return RetrainDecision(False, False, ("no champion to monitor",), False)
    triggers: list[str] = []
    quiet: list[str] = []

    auc = signals.latest_cohort_auc
    if auc is None:
        quiet.append("no matured cohort yet")
    elif auc < policy.min_cohort_auc:
        triggers.append(
            f"AUC {auc:.3f} on the matured cohort {signals.latest_cohort} is below "
            f"{policy.min_cohort_auc:.2f}"
        )
    else:
        quiet.append(f"cohort {signals.latest_cohort} AUC {auc:.3f} >= {policy.min_cohort_auc:.2f}")

    estimate_fires, estimate_reason = _estimated_auc(signals, policy)
    (triggers if estimate_fires else quiet).append(estimate_reason)

    drifted = signals.drifted_features
    follow_up_on, follow_up_reason = None, None
    if len(drifted) >= policy.max_drifted_features:
        triggers.append(
            f"drift on {len(drifted)} features (>= {policy.max_drifted_features}): "
            + ", ".join(drifted)
        )
        if signals.drifted_labelled is not None:
            labelled = signals.drifted_labelled
            population = (
                f"{labelled:,} of the {signals.drifted_customers or 0:,} drifted customers have "
                f"a matured label{_since_cutoff(signals)}"
            )
            if labelled < policy.min_new_labels_in_drift:
                follow_up_on = signals.as_of_date + dt.timedelta(days=LABEL_HORIZON_DAYS)
                population += (
                    f" (< {policy.min_new_labels_in_drift:,}): a retrain cannot learn them yet; "
                    f"follow-up retrain on {follow_up_on}, when tonight's labels have matured"
                )
                follow_up_reason = population
            triggers.append(population)
    else:
        quiet.append(f"{len(drifted)} features drifted (< {policy.max_drifted_features})")

    since = _since_cutoff(signals)
    if signals.new_churn_labels > policy.max_new_labels:
        triggers.append(
            f"{signals.new_churn_labels:,} new churn labels{since} (> {policy.max_new_labels:,})"
        )
    else:
        quiet.append(f"{signals.new_churn_labels:,} new churn labels{since}")

    if signals.follow_up_due is not None:
        # Scheduled for tonight: it fires whatever the drift and the cooldown say now.
        return RetrainDecision(
            True, True, (f"follow-up retrain {signals.follow_up_due}", *triggers), False
        )
    if not triggers:
        return RetrainDecision(False, False, tuple(quiet), False)
    if signals.nearest_request is not None:
        days = (signals.as_of_date - signals.nearest_request).days
        if abs(days) < policy.cooldown_days:
            when = f"{days} day(s) earlier" if days >= 0 else f"{-days} day(s) later"
            cooldown = (
                f"a retrain was requested on {signals.nearest_request}, {when}, within the "
                f"{policy.cooldown_days}-day cooldown"
            )
            return RetrainDecision(False, True, (*triggers, cooldown), True)
    return RetrainDecision(True, True, tuple(triggers), False, follow_up_on, follow_up_reason)


def _since_cutoff(signals: RetrainSignals) -> str:
    return f" since {signals.labels_since}" if signals.labels_since else ""


def _estimated_auc(signals: RetrainSignals, policy: RetrainingPolicy) -> tuple[bool, str]:
    """(fires, reason) of the estimated-AUC trigger."""
    floor, needed = policy.min_cohort_auc, policy.estimate_nights
    latest = signals.estimated_aucs[:needed]
    if not latest or latest[0][0] != signals.as_of_date:
        return False, "no estimated AUC for tonight"
    nights = ", ".join(f"{night} {auc:.3f}" for night, auc in latest)
    if len(latest) == needed and all(auc < floor for _, auc in latest):
        return True, f"estimated AUC below {floor:.2f} on the last {needed} nights: {nights}"
    return False, f"estimated AUC {latest[0][1]:.3f} tonight (the last {len(latest)}: {nights})"


@dataclass(frozen=True)
class ScheduledRetrainDecision:
    due: bool
    reason: str


def scheduled_retrain_due(
    now: dt.datetime, last_trained_at: dt.datetime | None, policy: RetrainingPolicy
) -> ScheduledRetrainDecision:
    """Whether the retrain DAG's monthly run trains a challenger.

    It does unless a model was trained in the last ``scheduled_min_gap_days`` days: a
    retrain that monitoring or a person just asked for already has the newest data, and
    Airflow runs the month's past slot as soon as the DAG is switched on (``catchup=False``
    still runs the latest one), which would otherwise retrain right after the first model.
    """
    if last_trained_at is None:
        return ScheduledRetrainDecision(True, "no model has been trained yet")
    age = now - last_trained_at
    gap = dt.timedelta(days=policy.scheduled_min_gap_days)
    trained = f"the newest model was trained {last_trained_at:%Y-%m-%d %H:%M} UTC"
    if age < gap:
        return ScheduledRetrainDecision(
            False,
            f"monthly retrain not due: {trained}, less than "
            f"{policy.scheduled_min_gap_days} days ago",
        )
    return ScheduledRetrainDecision(True, f"monthly retrain due: {trained}, {age.days} days ago")
