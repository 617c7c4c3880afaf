"""Customer-hash shards: a partition of the customers, balanced, stable, in range."""

from __future__ import annotations

import numpy as np
import pytest

from churnops.sharding import ShardSpec, all_shards, shard_of, sql_predicate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("count", [1, 2, 4, 7, 16])
def test_sequential_and_random_ids_spread_evenly(count: int) -> None:
    rng = np.random.default_rng(3)
    for ids in (np.arange(1, 200_001), rng.integers(0, 2**62, 200_000)):
        shards = shard_of(ids, count)
        assert shards.min() >= 0 and shards.max() < count
        sizes = np.bincount(shards, minlength=count)
        # 200,000 ids: every shard within 3 % of an equal share
        assert np.all(np.abs(sizes / (len(ids) / count) - 1) < 0.03), sizes


def test_a_customer_keeps_its_shard_whatever_else_is_scored() -> None:
    ids = np.arange(1, 10_001)
    alone = np.array([shard_of(np.array([i]), 4)[0] for i in ids[:200]])
    assert np.array_equal(alone, shard_of(ids, 4)[:200])
    assert np.array_equal(shard_of(ids[::-1], 4), shard_of(ids, 4)[::-1])


def test_negative_and_huge_ids_have_a_shard_in_range() -> None:
    ids = np.array([-(2**62), -5, -1, 0, 1, 2**31 - 1, 2**31, 2**63 - 1], dtype=np.int64)
    shards = shard_of(ids, 5)
    assert shards.min() >= 0 and shards.max() < 5


def test_a_shard_spec_is_validated_and_labelled_one_based() -> None:
    assert [s.label for s in all_shards(3)] == ["shard 1/3", "shard 2/3", "shard 3/3"]
    assert ShardSpec(0, 1).whole and not ShardSpec(0, 2).whole
    for index, count in ((2, 2), (-1, 2), (0, 0)):
        with pytest.raises(ValueError):
            ShardSpec(index, count)


def test_one_shard_filters_nothing_and_several_filter_by_literal_values() -> None:
    assert sql_predicate("customer_id", ShardSpec(0, 1)) == "TRUE"
    predicate = sql_predicate("customer_id", ShardSpec(2, 4))
    assert predicate.endswith("% 4 = 2") and "?" not in predicate
