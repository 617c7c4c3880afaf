"""The rollout's store and its evidence queries on both warehouses (a DuckDB file and a
fresh PostgreSQL database): history appended and read back as state, the serving share
from it, and the gates' numbers from small hand-made nights whose answers are known."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pyarrow as pa
import pytest
import sqlalchemy as sa

from churnops.deployment import evidence
from churnops.rollout import RolloutState
from churnops.rollout.store import RolloutStore
from churnops.score.store import PREDICTIONS, SCORING_RUNS, SHADOW_PREDICTIONS, ScoringStore
from churnops.settings import LABEL_COLUMN, RolloutSettings
from churnops.warehouse import Warehouse, utc_now

pytestmark = pytest.mark.integration

NIGHT = dt.date(2025, 12, 2)
POLICY = RolloutSettings()
LABELS = sa.Table(
    "fct_churn_labels",
    sa.MetaData(schema="marts"),
    sa.Column("as_of_date", sa.Date, nullable=False),
    sa.Column("customer_id", sa.BigInteger, nullable=False),
    sa.Column(LABEL_COLUMN, sa.Integer, nullable=False),
)


def _state(**kw: object) -> RolloutState:
    base = RolloutState("r1", "churn", "2", "1", "shadow", "running", NIGHT)
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_history_is_appended_and_the_newest_row_is_the_state(warehouse: Warehouse) -> None:
    store = RolloutStore(warehouse)
    assert store.current("churn") is None
    assert store.share_of(POLICY, "churn", "2") == 0.0
    store.record(_state(), NIGHT, "start", ["enters the shadow"], "pytest")
    canary = _state(phase="canary", last_night=NIGHT, phase_started_on=NIGHT)
    gates = [
        {"name": "scores", "status": "pass", "reasons": ["PSI 0.01"], "numbers": {"psi": 0.01}}
    ]
    store.record(canary, NIGHT, "advance", ["shadow complete"], "airflow", gates)
    store.record(_state(model_name="other"), NIGHT, "start", ["another model"], "pytest")
    assert store.current("churn") == canary
    assert store.share_of(POLICY, "churn", "2") == 0.05
    assert store.share_of(POLICY, "churn", "3") == 0.0  # not the rollout's challenger
    history = store.history("churn")
    assert [(h["seq"], h["action"], h["reasons"]) for h in history] == [
        (1, "start", ["enters the shadow"]),
        (2, "advance", ["shadow complete"]),
    ]
    assert history[0]["evidence"] is None and history[1]["evidence"] == gates
    store.record(dataclasses.replace(canary, status="rolled_back"), NIGHT, "rollback", ["x"], "ana")
    assert store.share_of(POLICY, "churn", "2") == 0.0


def _night(warehouse: Warehouse) -> None:
    """40 customers: 0-29 served by the champion (v1), 30-39 the canary (v2); v2's shadow
    score is the champion's plus 0.01 for everyone. Contacts: every fifth control customer
    and every other canary one; labels: customers divisible by 4 churned."""
    ScoringStore(warehouse).ensure()
    warehouse.ensure(LABELS)
    now = utc_now()
    ids = list(range(40))
    served = ["challenger" if i >= 30 else "champion" for i in ids]
    prob = [0.02 * (i % 30) + 0.01 for i in ids]
    predictions = pa.table(
        {
            "as_of_date": [NIGHT] * 40,
            "customer_id": ids,
            "churn_probability": prob,
            "risk_band": ["low"] * 40,
            "model_name": ["churn"] * 40,
            "model_version": ["2" if s == "challenger" else "1" for s in served],
            "served_by": served,
            "contact": [(i % 2 == 0) if i >= 30 else (i % 5 == 0) for i in ids],
            "reason_codes": [None] * 40,
            "scored_at": [now] * 40,
        }
    )
    shadow = pa.table(
        {
            "as_of_date": [NIGHT] * 40,
            "customer_id": ids,
            "churn_probability": [p + 0.01 for p in prob],
            "risk_band": ["low"] * 40,
            "model_name": ["churn"] * 40,
            "model_version": ["2"] * 40,
            "scored_at": [now] * 40,
        }
    )
    labels = pa.table(
        {
            "as_of_date": [NIGHT] * 40,
            "customer_id": ids,
            LABEL_COLUMN: [int(i % 4 == 0) for i in ids],
        }
    )
    run = {
        "as_of_date": NIGHT,
        "state": "scored",
        "rows_scored": 40,
        "canary_rows": 10,
        "shadow_rows": 40,
        "champion_version": "1",
        "challenger_version": "2",
        "canary_share": 0.25,
        "seconds": 1.5,
        "message": "",
        "run_id": None,
        "started_at": now,
        "finished_at": now,
    }
    earlier = {
        **run,
        "as_of_date": NIGHT - dt.timedelta(days=1),
        "shadow_rows": 0,
        "canary_rows": 0,
        "challenger_version": None,
        "seconds": 1.0,
    }
    with warehouse.transaction() as session:
        session.insert(PREDICTIONS, predictions)
        session.insert(SHADOW_PREDICTIONS, shadow)
        session.insert(LABELS, labels)
        session.insert(SCORING_RUNS, pa.Table.from_pylist([earlier, run]))


def test_the_evidence_queries_on_a_known_night(warehouse: Warehouse) -> None:
    _night(warehouse)
    champion, challenger = evidence.paired_scores(warehouse, NIGHT, "2")
    assert len(champion) == 30  # the champion-served customers only
    assert challenger == pytest.approx(champion + 0.01)
    run = evidence.scoring_run(warehouse, NIGHT)
    assert run is not None and run["canary_rows"] == 10
    assert evidence.baseline_seconds(warehouse, NIGHT) == [1.0]
    canary, control, nights = evidence.ab_arms(warehouse, "2")
    # canary 30..39: contacts 30,32,34,36,38; churned (÷4) 32,36, both contacted
    # control 0..29: contacts 0,5,10,15,20,25; churned 0,20 -> 2 of 6
    arm = (canary.customers, canary.contacts, canary.churners_contacted, canary.churners)
    assert arm == (10, 5, 2, 2)
    assert (control.customers, control.contacts, control.churners_contacted) == (30, 6, 2)
    assert nights == 1
    assert evidence.ab_arms(warehouse, "9") == (
        evidence.gates.Arm(0, 0, 0, 0),
        evidence.gates.Arm(0, 0, 0, 0),
        0,
    )
