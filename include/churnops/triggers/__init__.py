"""When monitoring asks for a retrain: the policy (pure) and the signals it reads."""

from churnops.triggers.policy import RetrainDecision, RetrainSignals, decide_retraining

__all__ = ["RetrainDecision", "RetrainSignals", "decide_retraining"]
