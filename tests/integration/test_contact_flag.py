"""The contact flag of the capacity rule: the night's top N by the serving model's score,
set at publish over the whole staged night, the same whatever the shards, on both
warehouse engines; and through ``score_day`` with a champion trained under that rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from churnops.score.store import ScoringStore
from churnops.settings import Settings
from churnops.stores import stores_for
from churnops.warehouse import Warehouse
from tests.helpers import canary_rollout, warehouse_of
from tests.trained_state import trained_state

pytestmark = pytest.mark.integration

NIGHT = dt.date(2025, 6, 1)


def _staged_night(customers: int, canary: set[int]) -> pa.Table:
    """A night's scores as the shards stage them: coarse scores (many ties), champion rows
    flagged null (capacity), canary rows flagged by a 0.5 threshold."""
    rng = np.random.default_rng(5)
    ids = np.arange(1, customers + 1, dtype=np.int64)
    scores = rng.integers(0, 10, customers) / 10  # ten values: ties at every cut
    in_canary = np.isin(ids, sorted(canary))
    return pa.table(
        {
            "as_of_date": pa.array([NIGHT] * customers, pa.date32()),
            "customer_id": pa.array(ids, pa.int64()),
            "churn_probability": pa.array(scores, pa.float64()),
            "risk_band": pa.array(["low"] * customers, pa.string()),
            "model_name": pa.array(["churn"] * customers, pa.string()),
            "model_version": pa.array(np.where(in_canary, "2", "1"), pa.string()),
            "served_by": pa.array(np.where(in_canary, "challenger", "champion"), pa.string()),
            "contact": pa.array(scores >= 0.5, pa.bool_(), mask=~in_canary),
            "reason_codes": pa.array([None] * customers, pa.list_(pa.string())),
            "scored_at": pa.array([dt.datetime(2025, 6, 2, 3)] * customers, pa.timestamp("us")),
            "shadow_probability": pa.array([None] * customers, pa.float64()),
            "shadow_risk_band": pa.array([None] * customers, pa.string()),
            "shadow_model_version": pa.array([None] * customers, pa.string()),
        }
    )


def _publish(store: ScoringStore, night: pa.Table, shards: int, capacity: int) -> list[tuple]:
    plan = f"plan-{shards}"
    shard_of = np.asarray(night.column("customer_id")) % shards
    rows = {}
    for shard in range(shards):
        part = night.filter(pa.array(shard_of == shard))
        rows[shard] = store.stage_shard(NIGHT, plan, shard, part)
    published = store.publish_night(NIGHT, plan, rows, night.num_rows, {"champion": capacity})
    flags = store.warehouse.tuples(
        "SELECT customer_id, served_by, contact FROM scoring.predictions "
        "WHERE as_of_date = ? ORDER BY customer_id",
        [NIGHT],
    )
    assert published["contact_rows"] == sum(1 for _, _, contact in flags if contact)
    return flags


def test_the_top_n_is_set_over_the_whole_night_whatever_the_shards(warehouse: Warehouse) -> None:
    store = ScoringStore(warehouse)
    canary = set(range(1, 201, 10))  # 20 of 200 customers served by the challenger
    night = _staged_night(200, canary)
    capacity = 30
    one = _publish(store, night, 1, capacity)
    three = _publish(store, night, 3, capacity)
    assert one == three

    # The champion's 180 customers get 30 - round(30 * 20 / 200) = 27 contacts: its top 27
    # by score, ties to the lower id; the canary keeps its threshold flags.
    scores = dict(
        zip(
            night.column("customer_id").to_pylist(),
            night.column("churn_probability").to_pylist(),
            strict=True,
        )
    )
    champion_ids = [c for c in scores if c not in canary]
    top = set(sorted(champion_ids, key=lambda c: (-scores[c], c))[:27])
    assert {c for c, served_by, contact in one if served_by == "champion" and contact} == top
    assert all(contact == (scores[c] >= 0.5) for c, served_by, contact in one if c in canary)
    # The cut falls inside a group of tied scores: some of it in, the rest out by id.
    cut = scores[max(top, key=lambda c: (-scores[c], c))]
    tied = [c for c in champion_ids if scores[c] == cut]
    assert any(c in top for c in tied) and not all(c in top for c in tied)


def test_a_capacity_larger_than_the_night_contacts_everyone(warehouse: Warehouse) -> None:
    store = ScoringStore(warehouse)
    flags = _publish(store, _staged_night(40, set()), 2, capacity=1_000)
    assert [contact for _, _, contact in flags] == [True] * 40


# ------------------------------------------------------------- through score_day
CAPACITY = 150


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return trained_state(
        tmp_path_factory.mktemp("capacity"),
        CHURNOPS_THRESHOLD_RULE="capacity",
        CHURNOPS_CONTACT_CAPACITY=str(CAPACITY),
    )


def _served(settings: Settings, night: dt.date) -> list[tuple]:
    return warehouse_of(settings).tuples(
        "SELECT customer_id, churn_probability, served_by, contact FROM scoring.predictions "
        "WHERE as_of_date = ? ORDER BY customer_id",
        [night],
    )


def test_the_champions_version_records_its_capacity_rule(settings: Settings) -> None:
    from churnops.registry import load_champion

    champion = load_champion(settings)
    assert champion.tags["threshold_rule"] == f"capacity@{CAPACITY}"
    assert champion.contact_capacity == CAPACITY
    assert float(champion.tags["capacity_base_rows"]) > 1_000


def test_score_day_contacts_the_nights_top_n_in_one_shard_or_three(settings: Settings) -> None:
    from churnops.score import score_day

    night = settings.simulation.history_end
    stores = stores_for(settings)
    one = score_day(settings, stores.features, stores.scoring, night, shards=1)
    rows_of_one = _served(settings, night)
    three = score_day(settings, stores.features, stores.scoring, night, shards=3)
    rows_of_three = _served(settings, night)
    assert rows_of_three == rows_of_one
    assert one.contact_rows == three.contact_rows == CAPACITY
    assert f"{CAPACITY} to contact" in three.message
    ranked = sorted(rows_of_one, key=lambda row: (-row[1], row[0]))
    assert {row[0] for row in ranked[:CAPACITY]} == {row[0] for row in rows_of_one if row[3]}


def test_a_canary_challenger_flags_its_rows_by_its_own_threshold(
    settings: Settings, tmp_path: Path
) -> None:
    """v2 trained under max_f1 serves a 30 % canary: its rows are flagged score >= its
    threshold; the champion's rows are its top N less the canary's share of N."""
    from dataclasses import replace

    from churnops.registry import load_version
    from churnops.registry.tracking import mlflow_client
    from churnops.retrain import retrain
    from churnops.score import score_day

    by_f1 = replace(settings, train=replace(settings.train, threshold_rule="max_f1"))
    outcome = retrain(
        by_f1,
        stores_for(by_f1).features,
        actor="pytest",
        reason="challenger",
        require_approval=True,
    )
    assert outcome.action in {"keep", "await_approval"}
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    client.set_registered_model_alias(name, "challenger", "2")
    challenger = load_version(settings, "2")
    assert challenger.contact_capacity is None and challenger.tags["threshold_rule"] == "max_f1"
    night = settings.simulation.history_end
    try:
        with canary_rollout(settings, "2", 0.3) as canary:
            results = [
                score_day(
                    canary, stores_for(canary).features, stores_for(canary).scoring, night, shards=n
                )
                for n in (1, 3)
            ]
        rows = _served(settings, night)
    finally:
        client.delete_registered_model_alias(name, "challenger")
    canary_rows = [row for row in rows if row[2] == "challenger"]
    champion_rows = [row for row in rows if row[2] == "champion"]
    assert results[0].canary_rows == results[1].canary_rows == len(canary_rows) > 0
    assert all(row[3] == (row[1] >= challenger.threshold) for row in canary_rows)
    quota = CAPACITY - round(CAPACITY * len(canary_rows) / len(rows))
    ranked = sorted(champion_rows, key=lambda row: (-row[1], row[0]))
    assert {row[0] for row in ranked[:quota]} == {row[0] for row in champion_rows if row[3]}
    assert results[0].contact_rows == results[1].contact_rows
