"""The promotion decision, rule by rule, at and just past every edge."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from churnops.evaluate import Decision, ModelMetrics, WindowMismatch, decide
from churnops.settings import PromotionPolicy, SettingsError

pytestmark = pytest.mark.unit

POLICY = PromotionPolicy()
SEGMENTS = {"plan_type.basic": 0.80, "tenure.new": 0.75, "value.top_decile": 0.82}


def metrics(
    auc: float = 0.815,
    recall: float = 0.70,
    brier: float = 0.060,
    segments: dict[str, float] | None = None,
    **overrides: object,
) -> ModelMetrics:
    base = ModelMetrics(
        auc=auc,
        recall=recall,
        precision=0.40,
        f1=0.51,
        brier=brier,
        threshold=0.2,
        threshold_rule="max_f1",
        test_start=dt.date(2026, 1, 1),
        test_end=dt.date(2026, 3, 31),
        # A large window: recall's sampling noise (2 SE ~ 0.004) is below every tolerance,
        # so these tests see the tolerances alone; the noise rule has its own tests.
        test_rows=1_000_000,
        test_positives=100_000,
        segment_auc=dict(SEGMENTS if segments is None else segments),
    )
    return dataclasses.replace(base, **overrides)  # type: ignore[arg-type]


CHAMPION = metrics()


# ------------------------------------------------------------------ AUC margin
@pytest.mark.parametrize(
    ("challenger_auc", "action"),
    [
        (0.835, "keep"),  # +0.020 exactly: not *more* than the margin (float noise included)
        (0.8351, "promote"),  # +0.0201
        (0.8350001, "promote"),  # +0.0200001: more than the margin, however little
        (0.815, "keep"),
        (0.70, "keep"),  # worse: the champion stays (still above the floor)
    ],
)
def test_auc_margin_edges(challenger_auc: float, action: str) -> None:
    decision = decide(CHAMPION, metrics(auc=challenger_auc), POLICY)
    assert decision.action == action, decision.reasons


def test_exactly_the_margin_keeps_and_says_so() -> None:
    decision = decide(CHAMPION, metrics(auc=0.835), POLICY)
    assert decision.action == "keep"
    assert decision.checks["auc_gain"] is False
    assert "AUC 0.835 vs champion 0.815: +0.020 <= margin 0.020" in decision.reasons
    assert any("not better by more than 0.020 AUC" in r for r in decision.reasons)


def test_a_gain_just_above_the_margin_promotes() -> None:
    decision = decide(CHAMPION, metrics(auc=0.815 + 0.0201), POLICY)
    assert decision.action == "promote"
    assert decision.promotes
    assert "AUC 0.835 vs champion 0.815: +0.020 > margin 0.020" in decision.reasons
    assert decision.auc_gain == pytest.approx(0.0201)
    assert decision.failed_checks == []


def test_the_margin_is_configurable() -> None:
    lenient = dataclasses.replace(POLICY, min_auc_gain=0.005)
    assert decide(CHAMPION, metrics(auc=0.821), lenient).action == "promote"
    assert decide(CHAMPION, metrics(auc=0.820), lenient).action == "keep"


# ------------------------------------------------------------------ regressions
@pytest.mark.parametrize(
    ("challenger_recall", "passes"),
    [(0.68, True), (0.6799, False), (0.70, True), (0.50, False)],
)
def test_recall_drop_tolerance(challenger_recall: float, passes: bool) -> None:
    decision = decide(CHAMPION, metrics(auc=0.86, recall=challenger_recall), POLICY)
    assert decision.checks["recall"] is passes
    assert decision.action == ("promote" if passes else "keep")
    if not passes:
        assert any(
            r.startswith(f"recall {challenger_recall:.3f} vs champion 0.700")
            and "beyond the tolerated drop 0.020" in r
            for r in decision.reasons
        ), decision.reasons
        assert "regresses on recall" in decision.reasons[-1]


@pytest.mark.parametrize(
    ("positives", "challenger_recall", "passes"),
    [
        # 800 churners: SE of the difference = sqrt((.7*.3 + r(1-r)) / 800) ~ 0.023
        (800, 0.67, True),  # -0.030: beyond the tolerance, within 2 SE (0.046)
        (800, 0.655, True),  # -0.045: still within 2 SE (0.0462)
        (800, 0.65, False),  # -0.050: beyond both
        (20_000, 0.67, False),  # the same drop on 20,000 churners is beyond 2 SE (0.009)
        (20_000, 0.685, True),  # within the tolerance: never a regression
    ],
)
def test_a_recall_drop_must_also_be_beyond_chance(
    positives: int, challenger_recall: float, passes: bool
) -> None:
    champion = metrics(test_positives=positives)
    challenger = metrics(auc=0.86, recall=challenger_recall, test_positives=positives)
    decision = decide(champion, challenger, POLICY)
    assert decision.checks["recall"] is passes, decision.reasons
    assert decision.action == ("promote" if passes else "keep")
    line = next(r for r in decision.reasons if r.startswith("recall "))
    drop = 0.70 - challenger_recall
    if drop > POLICY.max_recall_drop and passes:
        assert f"but within chance on {positives:,} churners (2 standard errors = " in line
    else:
        assert "within chance" not in line


def test_the_noise_rule_can_be_turned_off() -> None:
    policy = dataclasses.replace(POLICY, recall_noise_z=0.0)
    champion = metrics(test_positives=800)
    decision = decide(champion, metrics(auc=0.86, recall=0.67, test_positives=800), policy)
    assert decision.checks["recall"] is False and decision.action == "keep"


def test_the_recall_noise_is_the_binomial_standard_error_of_the_difference() -> None:
    from churnops.evaluate.decision import recall_difference_se

    champion = metrics(recall=0.7, test_positives=1000)
    challenger = metrics(recall=0.6, test_positives=1000)
    assert recall_difference_se(champion, challenger) == pytest.approx(
        ((0.7 * 0.3 + 0.6 * 0.4) / 1000) ** 0.5
    )
    assert recall_difference_se(champion, metrics(recall=0.6, test_positives=0)) == 0.0


@pytest.mark.parametrize(
    ("challenger_brier", "passes"),
    [(0.070, True), (0.0701, False), (0.050, True), (0.090, False)],
)
def test_brier_rise_tolerance(challenger_brier: float, passes: bool) -> None:
    decision = decide(CHAMPION, metrics(auc=0.86, brier=challenger_brier), POLICY)
    assert decision.checks["brier"] is passes
    assert decision.action == ("promote" if passes else "keep")


@pytest.mark.parametrize(
    ("segment_auc", "passes"),
    [(0.77, True), (0.7699, False), (0.90, True), (0.60, False)],
)
def test_segment_auc_drop_tolerance(segment_auc: float, passes: bool) -> None:
    segments = {**SEGMENTS, "plan_type.basic": segment_auc}
    decision = decide(CHAMPION, metrics(auc=0.86, segments=segments), POLICY)
    assert decision.checks["segment.plan_type.basic"] is passes
    assert decision.action == ("promote" if passes else "keep")
    if not passes:
        assert any(
            r.startswith("segment plan_type.basic AUC") and "beyond the tolerated drop 0.030" in r
            for r in decision.reasons
        )


def test_several_regressions_are_all_named() -> None:
    decision = decide(
        CHAMPION,
        metrics(auc=0.90, recall=0.5, brier=0.2, segments={**SEGMENTS, "tenure.new": 0.5}),
        POLICY,
    )
    assert decision.action == "keep"
    assert set(decision.failed_checks) == {"recall", "brier", "segment.tenure.new"}
    assert decision.reasons[-1] == (
        "the champion stays: the challenger regresses on recall, brier, segment.tenure.new"
    )


def test_a_segment_missing_on_one_side_is_reported_not_fatal() -> None:
    challenger = metrics(auc=0.86, segments={"plan_type.basic": 0.81, "tenure.new": 0.76})
    champion = metrics(segments={**SEGMENTS, "region.north": 0.9})
    decision = decide(champion, challenger, POLICY)
    assert decision.action == "promote"
    assert any(
        r.startswith("segment value.top_decile: only the champion has an AUC")
        for r in decision.reasons
    )
    assert any(r.startswith("segment region.north: only the champion") for r in decision.reasons)
    assert "segment.value.top_decile" not in decision.checks

    only_challenger = decide(
        metrics(segments={}), metrics(auc=0.86, segments={"tenure.new": 0.7}), POLICY
    )
    assert only_challenger.action == "promote"
    assert any("only the challenger has an AUC" in r for r in only_challenger.reasons)


# ------------------------------------------------------------------ no champion
@pytest.mark.parametrize(
    ("auc", "action"), [(0.70, "promote"), (0.6999, "reject"), (0.95, "promote"), (0.5, "reject")]
)
def test_first_champion_needs_the_floor(auc: float, action: str) -> None:
    decision = decide(None, metrics(auc=auc), POLICY)
    assert decision.action == action
    assert decision.champion_auc is None and decision.auc_gain is None
    if action == "reject":
        assert decision.reasons == [
            f"no champion yet, and AUC {auc:.3f} is below the 0.700 a first champion needs"
        ]
    else:
        assert decision.reasons[0] == f"no champion yet; AUC {auc:.3f} reaches the floor 0.700"


def test_a_challenger_below_the_floor_is_rejected_even_if_it_beats_a_weak_champion() -> None:
    decision = decide(metrics(auc=0.60), metrics(auc=0.65), POLICY)
    assert decision.action == "reject"
    assert decision.checks["auc_floor"] is False
    assert "AUC 0.650 is below the floor 0.700" in decision.reasons


# ------------------------------------------------------------------ manual approval
def test_approval_policy_waits_instead_of_promoting() -> None:
    manual = dataclasses.replace(POLICY, require_approval=True)
    decision = decide(CHAMPION, metrics(auc=0.86), manual)
    assert decision.action == "await_approval"
    assert not decision.promotes
    assert decision.reasons[-1] == (
        "the rules would promote; the policy requires a person's approval"
    )
    assert decide(None, metrics(auc=0.8), manual).action == "await_approval"


def test_approval_policy_does_not_change_keep_or_reject() -> None:
    manual = dataclasses.replace(POLICY, require_approval=True)
    assert decide(CHAMPION, metrics(auc=0.83), manual).action == "keep"
    assert decide(None, metrics(auc=0.6), manual).action == "reject"


# ------------------------------------------------------------------ contract
def test_different_test_windows_are_refused() -> None:
    other_window = metrics(auc=0.9, test_start=dt.date(2026, 2, 1))
    with pytest.raises(WindowMismatch, match="re-score the champion"):
        decide(CHAMPION, other_window, POLICY)
    with pytest.raises(WindowMismatch):
        decide(CHAMPION, metrics(auc=0.9, test_rows=9_999), POLICY)


def test_decide_is_pure_and_the_decision_serialises() -> None:
    champion, challenger = metrics(), metrics(auc=0.86)
    before = (champion.to_dict(), challenger.to_dict())
    first = decide(champion, challenger, POLICY)
    assert decide(champion, challenger, POLICY) == first
    assert (champion.to_dict(), challenger.to_dict()) == before
    assert isinstance(first, Decision)
    assert json.loads(json.dumps(first.to_dict()))["action"] == "promote"
    assert json.loads(first.reasons_json()) == first.reasons
    assert first.summary().startswith("promote: AUC 0.860 vs champion 0.815")


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(SettingsError, match="must not be negative"):
        PromotionPolicy(min_auc_gain=-0.01)
    with pytest.raises(SettingsError, match="min_auc_first_champion"):
        PromotionPolicy(min_auc_first_champion=1.5)


def test_metrics_round_trip_through_json() -> None:
    original = metrics(train_auc=0.9, validation_auc=0.82, baseline_auc=0.55)
    again = ModelMetrics.from_dict(json.loads(json.dumps(original.to_dict())))
    assert again == original
    assert again.auc_gap == pytest.approx(0.085)
    assert original.flat()["segment_auc.plan_type.basic"] == 0.80
    assert "train_test_auc_gap" in original.flat()
