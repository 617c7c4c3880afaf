"""The rollout's gates, as pure functions of a night's numbers: each verdict and its
numbers, on constructed inputs whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from churnops.rollout import gates
from churnops.settings import RolloutSettings

pytestmark = pytest.mark.unit

POLICY = RolloutSettings()
RNG = np.random.default_rng(7)
CHAMPION = RNG.beta(1, 11, 5_000)  # about an 8 % mean churn probability


def test_the_same_scores_pass_with_psi_zero_and_full_rank_agreement() -> None:
    result = gates.score_gate(CHAMPION, CHAMPION.copy(), POLICY)
    assert result.status == "pass"
    assert result.numbers["psi"] == pytest.approx(0.0, abs=1e-9)
    assert result.numbers["rank_correlation"] == pytest.approx(1.0)


def test_a_slightly_different_model_passes() -> None:
    challenger = np.clip(CHAMPION * np.exp(RNG.normal(0, 0.1, len(CHAMPION))), 0, 1)
    result = gates.score_gate(CHAMPION, challenger, POLICY)
    assert result.status == "pass" and result.numbers["rank_correlation"] > 0.9


def test_a_model_that_ranks_at_random_fails_on_rank_correlation() -> None:
    shuffled = RNG.permutation(CHAMPION)  # the same distribution, PSI ~ 0
    result = gates.score_gate(CHAMPION, shuffled, POLICY)
    assert result.status == "fail"
    assert result.numbers["psi"] < 0.05
    assert "rank correlation" in result.reasons[1] and "< 0.5" in result.reasons[1]


def test_a_shifted_distribution_fails_on_psi() -> None:
    result = gates.score_gate(CHAMPION, np.clip(CHAMPION + 0.3, 0, 1), POLICY)
    assert result.status == "fail" and result.numbers["psi"] > POLICY.max_score_psi


def test_too_few_customers_is_pending() -> None:
    assert gates.score_gate(CHAMPION[:10], CHAMPION[:10], POLICY).status == "pending"


def _run(**kw: object) -> dict:
    return {
        "state": "scored",
        "rows_scored": 1000,
        "shadow_rows": 1000,
        "canary_rows": 50,
        "seconds": 12.0,
        "message": "",
        **kw,
    }


@pytest.mark.parametrize(
    ("run", "baseline", "status", "words"),
    [
        (_run(), [10.0, 11.0, 9.0], "pass", "1.2x the champion-only median 10.0 s"),
        (_run(seconds=100.0), [10.0], "fail", "over 3x"),
        (_run(seconds=25.0), [5.0], "pass", "within 3x"),  # under the 30 s floor
        (_run(shadow_rows=900), [10.0], "fail", "did not score 100 of 1,000"),
        (_run(state="skipped", message="no champion"), [], "fail", "not scored: no champion"),
        (None, [], "fail", "no scoring run recorded"),
        (_run(), [], "pass", "no champion-only night to compare with"),
    ],
)
def test_the_scoring_gate(run: dict | None, baseline: list[float], status: str, words: str) -> None:
    result = gates.scoring_gate(run, baseline, POLICY)
    assert result.status == status
    assert words in " ".join(result.reasons)


@pytest.mark.parametrize(
    ("challenger", "reference", "champion", "status"),
    [
        (0.75, 0.76, 0.78, "pass"),  # below the champion's own estimate: not compared
        (0.74, 0.76, None, "pass"),
        (0.739, 0.76, 0.70, "fail"),
        (None, 0.76, 0.8, "pending"),
        (0.8, None, 0.8, "pending"),
    ],
)
def test_the_estimate_gate(
    challenger: float | None, reference: float | None, champion: float | None, status: str
) -> None:
    result = gates.estimate_gate(challenger, reference, champion, POLICY)
    assert result.status == status
    if champion is not None and status != "pending":
        assert "not compared" in result.reasons[0]


def test_the_lift_and_its_interval() -> None:
    canary = gates.Arm(customers=2_000, contacts=400, churners_contacted=120, churners=160)
    control = gates.Arm(customers=38_000, contacts=8_000, churners_contacted=2_000, churners=3_000)
    lift = gates.relative_lift(canary, control)
    assert lift is not None
    assert lift.value == pytest.approx(0.30 / 0.25 - 1)
    assert lift.lower < lift.value < lift.upper
    # Katz interval of the log ratio, by hand.
    se = np.sqrt((1 - 0.30) / 120 + (1 - 0.25) / 2000)
    assert lift.lower == pytest.approx(np.exp(np.log(1.2) - 1.959964 * se) - 1)


@pytest.mark.parametrize(
    ("caught", "status"),
    [(120, "pass"), (102, "pass"), (101, "fail"), (100, "fail"), (80, "fail")],
)
def test_the_ab_readout_rolls_back_under_two_percent(caught: int, status: str) -> None:
    """Control catches 0.25 per contact; the canary needs >= 0.255 (2 % relative lift)."""
    canary = gates.Arm(2_000, 400, caught, 160)
    control = gates.Arm(38_000, 8_000, 2_000, 3_000)
    result = gates.ab_gate(canary, control, 7, POLICY)
    assert result.status == status
    assert "95 % CI" in result.reasons[0]


def test_the_ab_readout_is_pending_until_enough_labelled_contacts() -> None:
    result = gates.ab_gate(gates.Arm(100, 10, 5, 8), gates.Arm(2_000, 400, 100, 150), 1, POLICY)
    assert result.status == "pending" and "30 each needed" in result.reasons[0]


def test_the_ab_readout_without_a_caught_churner_in_an_arm() -> None:
    none_caught = gates.Arm(500, 40, 0, 30)
    some = gates.Arm(9_000, 800, 200, 700)
    assert gates.ab_gate(none_caught, some, 3, POLICY).status == "fail"
    assert gates.ab_gate(some, none_caught, 3, POLICY).status == "pass"
