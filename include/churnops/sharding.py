"""Customer-hash shards: how one night's customers are split across parallel tasks.

A customer's shard is a fixed function of its id and the shard count, computed the same
way in SQL (so each shard's task reads only its own rows from the warehouse, on DuckDB and
on PostgreSQL alike) and in NumPy (to check the SQL, and in tests):

    shard(id, n) = ((id mod P) * 48271 mod P) mod n,   P = 2^31 - 1

The middle step is one step of the Lehmer (MINSTD) generator: it spreads neighbouring ids
(customer ids are often sequential) evenly over the shards, and every intermediate value
stays below 2^47, so 64-bit integer arithmetic is exact on both engines. Ids below zero
are mapped into [0, P) first (SQL's ``%`` keeps the sign of the dividend).

Nothing here depends on the engine or on Airflow: the nightly DAG maps one task over the
shards of a :class:`ShardSpec` list, the stores use :func:`sql_predicate`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_MODULUS = 2_147_483_647  # 2^31 - 1, prime
_MULTIPLIER = 48_271  # MINSTD's multiplier: a primitive root modulo P


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a night needs at least one shard, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index} is outside 0..{self.count - 1}")

    @property
    def label(self) -> str:
        """For logs and the Airflow UI: ``shard 2/4`` (one-based)."""
        return f"shard {self.index + 1}/{self.count}"

    @property
    def whole(self) -> bool:
        """One shard: every customer."""
        return self.count == 1


def all_shards(count: int) -> list[ShardSpec]:
    return [ShardSpec(index, count) for index in range(count)]


def sql_expression(column: str, count: int) -> str:
    """SQL for the shard (0..count-1) of integer ``column``; literals only (no parameters),
    the same text on every engine."""
    folded = f"((({column} % {_MODULUS}) + {_MODULUS}) % {_MODULUS})"
    return f"(({folded} * {_MULTIPLIER}) % {_MODULUS}) % {int(count)}"


def sql_predicate(column: str, shard: ShardSpec) -> str:
    """A WHERE condition that keeps the rows of ``shard`` (TRUE for a single shard)."""
    if shard.whole:
        return "TRUE"
    return f"{sql_expression(column, shard.count)} = {int(shard.index)}"


def shard_of(customer_ids: np.ndarray, count: int) -> np.ndarray:
    """Each id's shard, exactly as :func:`sql_expression` computes it."""
    import numpy as np

    ids = np.asarray(customer_ids, dtype=np.int64)
    folded = np.mod(ids, _MODULUS)  # NumPy's mod is already non-negative for P > 0
    return ((folded * _MULTIPLIER) % _MODULUS) % count
