"""What a model is worth, and whether it replaces the champion.

- ``metrics``: ``ModelMetrics``, plain data: what a model scored on one test window;
- ``measure``: ``evaluate_model`` (the model just trained) and ``score_on`` (any model, a
  re-loaded champion included) fill it, the operating threshold chosen on the same split's
  validation window, so that two models compare like for like;
- ``decision``: ``decide`` is pure (two models' metrics + policy in, decision out);
- ``card`` and ``plots``: the model card and the evaluation plots logged with a version.

Depends on ``churnops.train`` (the frame and the model it measures), never the other way.
Importing this package is cheap; sklearn and matplotlib load on first use.
"""

from churnops.evaluate.decision import Action, Decision, WindowMismatch, decide
from churnops.evaluate.measure import evaluate_model, score_on
from churnops.evaluate.metrics import CalibrationBin, ModelMetrics

__all__ = [
    "Action",
    "CalibrationBin",
    "Decision",
    "ModelMetrics",
    "WindowMismatch",
    "decide",
    "evaluate_model",
    "score_on",
]
