"""When monitoring asks for a retrain: the policy (pure) and the signals it reads."""

from churnops.triggers.policy import (
    RetrainDecision,
    RetrainSignals,
    ScheduledRetrainDecision,
    decide_retraining,
    scheduled_retrain_due,
)

__all__ = [
    "RetrainDecision",
    "RetrainSignals",
    "ScheduledRetrainDecision",
    "decide_retraining",
    "scheduled_retrain_due",
]
