"""The rollout's gates: pure functions of one night's numbers and the policy, each a
``GateResult`` (pass, fail or pending) with its numbers and reasons in words.

- ``scores``: the challenger's scores against the champion's **on the same customers**
  (the night's served champion rows beside their shadow scores): the population
  stability index of the two distributions (10 bins at the champion's deciles) and the
  Spearman rank correlation. A model that scores a different population shape, or ranks
  customers unlike the champion, is broken rather than better.
- ``scoring``: the night's scoring run: scored, the challenger scored every customer (no
  missing shadow row), and the time against the champion-only nights before the rollout.
- ``estimated_performance``: the challenger's estimated AUC on the night (CBPE with its
  own reference, ``churnops.estimation``) against its AUC on its own validation window
  (not against the champion's estimate: see :func:`estimate_gate`); pending without one.
- ``ab_readout``: the seed's A/B test of the canary. The simulator, like any system
  without a measured retention effect, gives contacts no causal effect on churn, so
  "retention" is measured as what a retention team can act on: **churners caught per
  contact** (contacted customers who churned within 90 days over contacted customers),
  on the canary's customers (served the challenger) against control (the champion's), on
  the canary nights whose labels have matured. Lift = canary / control - 1 with a 95 %
  confidence interval (log ratio of two proportions). Less than
  ``min_ab_improvement`` (2 %) of lift, any regression included, fails. Pending until
  each arm has ``min_ab_contacts`` labelled contacts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churnops.rollout.machine import GateResult
from churnops.settings import RolloutSettings

if TYPE_CHECKING:
    import numpy as np

SCORES, SCORING, ESTIMATE, AB = "scores", "scoring", "estimated_performance", "ab_readout"
MIN_COMPARED_ROWS = 50
# A night scored faster than this never fails the time gate (tiny nights are all noise).
SECONDS_FLOOR = 30.0
_Z95 = 1.959964


def population_stability(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of ``actual`` against ``expected``, on ``expected``'s quantile bins."""
    import numpy as np

    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)))
    if len(edges) < 3:  # a (near) constant reference: compare above/below its value
        edges = np.array([-np.inf, float(np.median(expected)), np.inf])
    edges[0], edges[-1] = -np.inf, np.inf
    e = np.histogram(expected, edges)[0] / len(expected)
    a = np.histogram(actual, edges)[0] / len(actual)
    e, a = np.clip(e, 1e-4, None), np.clip(a, 1e-4, None)
    return float(np.sum((a - e) * np.log(a / e)))


def rank_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rho (average ranks for ties)."""
    import numpy as np
    from scipy.stats import rankdata

    rx, ry = rankdata(x), rankdata(y)
    if np.std(rx) == 0 or np.std(ry) == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def score_gate(champion: np.ndarray, challenger: np.ndarray, policy: RolloutSettings) -> GateResult:
    """The two models' scores of the same customers (``champion[i]`` and
    ``challenger[i]`` are one customer's)."""
    rows = len(champion)
    if rows < MIN_COMPARED_ROWS:
        return GateResult(
            SCORES,
            "pending",
            [f"{rows} customers scored by both models tonight; {MIN_COMPARED_ROWS} needed"],
        )
    psi = population_stability(champion, challenger)
    rho = rank_correlation(champion, challenger)
    numbers = {
        "rows": rows,
        "psi": round(psi, 4),
        "rank_correlation": round(rho, 4),
        "champion_mean": round(float(champion.mean()), 5),
        "challenger_mean": round(float(challenger.mean()), 5),
    }
    psi_ok = psi <= policy.max_score_psi
    rho_ok = rho >= policy.min_rank_correlation
    reasons = [
        f"PSI of the challenger's scores {psi:.3f} "
        f"{'<=' if psi_ok else '>'} {policy.max_score_psi:g} on {rows:,} customers "
        f"(mean {numbers['challenger_mean']:.4f} vs champion {numbers['champion_mean']:.4f})",
        f"rank correlation {rho:.3f} {'>=' if rho_ok else '<'} {policy.min_rank_correlation:g}",
    ]
    return GateResult(SCORES, "pass" if psi_ok and rho_ok else "fail", reasons, numbers)


def scoring_gate(
    run: dict[str, Any] | None, baseline_seconds: list[float], policy: RolloutSettings
) -> GateResult:
    """The night's ``scoring_runs`` row (newest) and the seconds of the champion-only
    nights before the rollout."""
    if run is None:
        return GateResult(SCORING, "fail", ["no scoring run recorded for the night"])
    numbers = {
        "state": run["state"],
        "rows_scored": int(run["rows_scored"]),
        "shadow_rows": int(run["shadow_rows"]),
        "canary_rows": int(run["canary_rows"]),
        "seconds": round(float(run["seconds"]), 2),
    }
    if run["state"] != "scored":
        return GateResult(SCORING, "fail", [f"the night was not scored: {run['message']}"], numbers)
    reasons, ok = [], True
    missing = numbers["rows_scored"] - numbers["shadow_rows"]
    if missing > 0:
        ok = False
        reasons.append(
            f"the challenger did not score {missing:,} of {numbers['rows_scored']:,} customers"
        )
    else:
        reasons.append(f"the challenger scored all {numbers['rows_scored']:,} customers")
    if baseline_seconds:
        import statistics

        baseline = statistics.median(baseline_seconds)
        ratio = numbers["seconds"] / baseline if baseline > 0 else 1.0
        numbers.update(baseline_seconds=round(baseline, 2), seconds_ratio=round(ratio, 2))
        slow = ratio > policy.max_scoring_seconds_ratio and numbers["seconds"] > SECONDS_FLOOR
        ok = ok and not slow
        reasons.append(
            f"scoring took {numbers['seconds']:.1f} s, {ratio:.1f}x the champion-only median "
            f"{baseline:.1f} s ({'over' if slow else 'within'} "
            f"{policy.max_scoring_seconds_ratio:g}x)"
        )
    else:
        reasons.append(
            f"scoring took {numbers['seconds']:.1f} s (no champion-only night to compare with)"
        )
    return GateResult(SCORING, "pass" if ok else "fail", reasons, numbers)


def estimate_gate(
    challenger_auc: float | None,
    challenger_reference_auc: float | None,
    champion_auc: float | None,
    policy: RolloutSettings,
) -> GateResult:
    """The challenger's estimated AUC tonight (CBPE on its scores of the night) against
    its AUC on its own validation window (its reference): a drop beyond
    ``max_estimated_auc_drop`` says tonight's customers are ones it scores worse.

    The champion's estimate is shown beside it, not compared: each model is estimated
    against its own reference, and under concept drift the champion's is stale (it
    estimates the champion as good as it was), so a better retrained challenger would
    look worse (seen on ``price_increase``: champion estimated 0.775, challenger 0.750,
    while on matured labels the challenger wins by 0.038)."""
    if challenger_auc is None or challenger_reference_auc is None:
        return GateResult(ESTIMATE, "pending", ["no estimated AUC for the challenger tonight"])
    drop = challenger_reference_auc - challenger_auc
    ok = drop <= policy.max_estimated_auc_drop + 1e-9
    numbers = {
        "challenger_auc": round(challenger_auc, 4),
        "challenger_reference_auc": round(challenger_reference_auc, 4),
        "champion_auc": None if champion_auc is None else round(champion_auc, 4),
    }
    champion = (
        ""
        if champion_auc is None
        else f"; the champion's own estimate {champion_auc:.3f}, not compared (own reference)"
    )
    return GateResult(
        ESTIMATE,
        "pass" if ok else "fail",
        [
            f"estimated AUC {challenger_auc:.3f} vs {challenger_reference_auc:.3f} on its "
            f"validation window ({-drop:+.3f}; the tolerated drop is "
            f"{policy.max_estimated_auc_drop:g}){champion}"
        ],
        numbers,
    )


@dataclass(frozen=True)
class Arm:
    """One arm of the A/B readout, on nights whose labels matured."""

    customers: int
    contacts: int
    churners_contacted: int
    churners: int

    @property
    def caught_per_contact(self) -> float | None:
        return self.churners_contacted / self.contacts if self.contacts else None


@dataclass(frozen=True)
class Lift:
    value: float
    lower: float
    upper: float


def relative_lift(canary: Arm, control: Arm) -> Lift | None:
    """canary/control - 1 of churners caught per contact, with a 95 % interval (the log
    of a ratio of two proportions, Katz); None when either arm caught no churner."""
    p1, p0 = canary.caught_per_contact, control.caught_per_contact
    if not p1 or not p0:
        return None
    log_ratio = math.log(p1 / p0)
    se = math.sqrt((1 - p1) / canary.churners_contacted + (1 - p0) / control.churners_contacted)
    return Lift(
        p1 / p0 - 1, math.exp(log_ratio - _Z95 * se) - 1, math.exp(log_ratio + _Z95 * se) - 1
    )


def ab_gate(canary: Arm, control: Arm, nights: int, policy: RolloutSettings) -> GateResult:
    """The canary's A/B readout over ``nights`` canary nights with matured labels."""
    numbers: dict[str, Any] = {
        "matured_nights": nights,
        "canary": vars(canary),
        "control": vars(control),
    }
    if canary.contacts < policy.min_ab_contacts or control.contacts < policy.min_ab_contacts:
        return GateResult(
            AB,
            "pending",
            [
                f"{canary.contacts} canary and {control.contacts} control contacts with a matured "
                f"label on {nights} night(s); {policy.min_ab_contacts} each needed (labels mature "
                "90 days after a night; the ramp goes on on the leading gates meanwhile)"
            ],
            numbers,
        )
    lift = relative_lift(canary, control)
    words = (
        f"churners caught per contact: canary {canary.churners_contacted}/{canary.contacts}"
        f" = {canary.caught_per_contact or 0:.3f}, control {control.churners_contacted}/"
        f"{control.contacts} = {control.caught_per_contact or 0:.3f}"
    )
    if lift is None:
        ok = (canary.caught_per_contact or 0) > (control.caught_per_contact or 0)
        return GateResult(
            AB, "pass" if ok else "fail", [words + "; no lift (an arm caught no churner)"], numbers
        )
    numbers["lift"] = {
        "value": round(lift.value, 4),
        "lower": round(lift.lower, 4),
        "upper": round(lift.upper, 4),
    }
    ok = lift.value >= policy.min_ab_improvement
    return GateResult(
        AB,
        "pass" if ok else "fail",
        [
            f"{words}; lift {lift.value:+.1%} (95 % CI {lift.lower:+.1%} to {lift.upper:+.1%}) "
            f"{'>=' if ok else '<'} the required {policy.min_ab_improvement:+.0%}"
        ],
        numbers,
    )
