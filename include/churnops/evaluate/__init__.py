"""Champion/challenger evaluation: metrics on one test window, and the promotion decision.

``decide`` is pure (metrics + policy in, decision out). ``score_on`` measures any model
(a re-loaded champion included) on a split's test window, with the operating threshold
chosen on the same split's validation window, so that two models compare like for like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churnops.evaluate.decision import Action, Decision, WindowMismatch, decide
from churnops.evaluate.metrics import CalibrationBin, ModelMetrics

if TYPE_CHECKING:
    from churnops.train.frame import FrameSplit
    from churnops.train.model import ChurnModel

__all__ = [
    "Action",
    "CalibrationBin",
    "Decision",
    "ModelMetrics",
    "WindowMismatch",
    "decide",
    "score_on",
]


def score_on(model: ChurnModel, split: FrameSplit) -> ModelMetrics:
    """``model``'s metrics on ``split``'s test window (threshold from its validation window).

    For re-scoring the champion on the challenger's window: no train AUC (the champion was
    trained on other data) and no SHAP (the champion's explanations were logged with it).
    """
    from churnops.train.evaluation import evaluate_model

    return evaluate_model(model, split, include_train=False, explain=False)
