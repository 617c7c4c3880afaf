"""Champion/challenger: should a freshly trained model replace the champion?

``decide`` is a pure function of two models' metrics on the same test window and the
promotion policy. It returns the action and every reason, in plain words with the
numbers, so the registry only carries the decision out and the log says why.

Actions:

- ``promote``: the challenger becomes champion (the old one stays as previous_champion);
- ``await_approval``: the rules would promote, but the policy wants a person to sign off;
- ``keep``: the champion stays; the challenger is kept for review (and shadow scoring);
- ``reject``: the challenger is not good enough to be kept at all (below the AUC floor).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from churnops.evaluate.metrics import ModelMetrics
from churnops.settings import PromotionPolicy

# ``rollout`` and ``wait`` are set by the retrain when the rollout is on
# (``churnops.rollout``): the challenger enters it, or waits for the running one to end.
Action = Literal["promote", "keep", "await_approval", "reject", "rollout", "wait"]

# Metrics are compared after rounding away float noise: a gain of exactly the margin
# (0.835 - 0.815 = 0.020000000000000018 in floating point) is not "more than" it.
_EPSILON = 1e-9


class WindowMismatch(ValueError):
    """The two models were measured on different test windows: the comparison means nothing."""


@dataclass(frozen=True)
class Decision:
    """What to do with a challenger, and why."""

    action: Action
    reasons: list[str]
    challenger_auc: float
    champion_auc: float | None = None
    # Rule name -> passed (auc_gain, recall, brier, segment.<key>, auc_floor).
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def auc_gain(self) -> float | None:
        return None if self.champion_auc is None else self.challenger_auc - self.champion_auc

    @property
    def promotes(self) -> bool:
        return self.action == "promote"

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, passed in self.checks.items() if not passed]

    def summary(self) -> str:
        return f"{self.action}: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reasons": list(self.reasons),
            "challenger_auc": self.challenger_auc,
            "champion_auc": self.champion_auc,
            "checks": dict(self.checks),
        }

    def reasons_json(self) -> str:
        return json.dumps(self.reasons)


def decide(
    champion: ModelMetrics | None, challenger: ModelMetrics, policy: PromotionPolicy
) -> Decision:
    """Promote, keep, await approval or reject the challenger (see the module docstring).

    With a champion, both metrics must come from the same test window (re-score the
    champion with ``churnops.evaluate.score_on``), else :class:`WindowMismatch`.
    """
    floor = policy.min_auc_first_champion
    floor_ok = challenger.auc >= floor - _EPSILON
    if champion is None:
        if not floor_ok:
            return Decision(
                "reject",
                [
                    f"no champion yet, and AUC {challenger.auc:.3f} is below the "
                    f"{floor:.3f} a first champion needs"
                ],
                challenger.auc,
                checks={"auc_floor": False},
            )
        return _would_promote(
            policy,
            [f"no champion yet; AUC {challenger.auc:.3f} reaches the floor {floor:.3f}"],
            challenger.auc,
            None,
            {"auc_floor": True},
        )

    if not champion.same_window_as(challenger):
        raise WindowMismatch(
            f"champion measured on as-of {champion.test_start}..{champion.test_end} "
            f"({champion.test_rows} rows), challenger on {challenger.test_start}.."
            f"{challenger.test_end} ({challenger.test_rows} rows): re-score the champion on "
            "the challenger's test window (churnops.evaluate.score_on)"
        )

    checks: dict[str, bool] = {}
    reasons: list[str] = []

    gain = challenger.auc - champion.auc
    checks["auc_gain"] = gain > policy.min_auc_gain + _EPSILON
    relation = ">" if checks["auc_gain"] else "<="
    reasons.append(
        f"AUC {challenger.auc:.3f} vs champion {champion.auc:.3f}: {gain:+.3f} {relation} "
        f"margin {policy.min_auc_gain:.3f}"
    )

    recall_drop = champion.recall - challenger.recall
    beyond_tolerance = recall_drop > policy.max_recall_drop + _EPSILON
    noise = policy.recall_noise_z * recall_difference_se(champion, challenger)
    checks["recall"] = not (beyond_tolerance and recall_drop > noise + _EPSILON)
    words = _tolerance_words(not beyond_tolerance, "drop", policy.max_recall_drop)
    if beyond_tolerance and checks["recall"]:
        words += (
            f", but within chance on {challenger.test_positives:,} churners "
            f"({policy.recall_noise_z:g} standard errors = {noise:.3f})"
        )
    reasons.append(
        f"recall {challenger.recall:.3f} vs champion {champion.recall:.3f}: "
        f"{challenger.recall - champion.recall:+.3f}, {words}"
    )

    brier_rise = challenger.brier - champion.brier
    checks["brier"] = brier_rise <= policy.max_brier_rise + _EPSILON
    reasons.append(
        f"Brier {challenger.brier:.4f} vs champion {champion.brier:.4f}: {brier_rise:+.4f}, "
        + _tolerance_words(checks["brier"], "rise", policy.max_brier_rise, digits=4)
    )

    segment_failures: list[str] = []
    for key in sorted(set(champion.segment_auc) | set(challenger.segment_auc)):
        if key not in challenger.segment_auc or key not in champion.segment_auc:
            side = "champion" if key in champion.segment_auc else "challenger"
            reasons.append(
                f"segment {key}: only the {side} has an AUC (too few churners for the "
                "other); not compared"
            )
            continue
        drop = champion.segment_auc[key] - challenger.segment_auc[key]
        passed = drop <= policy.max_segment_auc_drop + _EPSILON
        checks[f"segment.{key}"] = passed
        if not passed:
            segment_failures.append(
                f"segment {key} AUC {challenger.segment_auc[key]:.3f} vs champion "
                f"{champion.segment_auc[key]:.3f}: {challenger.segment_auc[key] - champion.segment_auc[key]:+.3f}, beyond the tolerated drop "
                f"{policy.max_segment_auc_drop:.3f}"
            )
    compared = [k for k in checks if k.startswith("segment.")]
    if segment_failures:
        reasons.extend(segment_failures)
    elif compared:
        reasons.append(
            f"no segment's AUC dropped by more than {policy.max_segment_auc_drop:.3f} "
            f"({len(compared)} segments compared)"
        )

    checks["auc_floor"] = floor_ok
    if not floor_ok:
        reasons.append(f"AUC {challenger.auc:.3f} is below the floor {floor:.3f}")
        return Decision("reject", reasons, challenger.auc, champion.auc, checks)

    regressions = [name for name, passed in checks.items() if not passed and name != "auc_gain"]
    if checks["auc_gain"] and not regressions:
        return _would_promote(policy, reasons, challenger.auc, champion.auc, checks)
    if regressions:
        reasons.append(f"the champion stays: the challenger regresses on {', '.join(regressions)}")
    else:
        reasons.append(
            f"the champion stays: the challenger is not better by more than "
            f"{policy.min_auc_gain:.3f} AUC"
        )
    return Decision("keep", reasons, challenger.auc, champion.auc, checks)


def recall_difference_se(champion: ModelMetrics, challenger: ModelMetrics) -> float:
    """Standard error of the difference of two recalls on the window's churners (binomial,
    treated as independent: a little wider than the paired truth, so it errs towards
    calling a drop chance rather than blocking a better model on noise)."""
    positives = challenger.test_positives
    if positives <= 0:
        return 0.0
    variance = sum(r * (1 - r) for r in (champion.recall, challenger.recall)) / positives
    return math.sqrt(variance)


def _would_promote(
    policy: PromotionPolicy,
    reasons: list[str],
    challenger_auc: float,
    champion_auc: float | None,
    checks: dict[str, bool],
) -> Decision:
    if policy.require_approval:
        reasons.append("the rules would promote; the policy requires a person's approval")
        return Decision("await_approval", reasons, challenger_auc, champion_auc, checks)
    reasons.append("the challenger becomes champion")
    return Decision("promote", reasons, challenger_auc, champion_auc, checks)


def _tolerance_words(passed: bool, kind: str, tolerance: float, digits: int = 3) -> str:
    word = "within" if passed else "beyond"
    return f"{word} the tolerated {kind} {tolerance:.{digits}f}"
