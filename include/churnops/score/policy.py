"""The serving decisions of nightly scoring, as pure functions of scores, ids and policy.

- :func:`assign_risk_bands`: a probability's band is the first band (highest floor first)
  whose floor it reaches. With the default floors, ``high`` (>= 0.30) is about four times
  the 8 % base rate, the customers a retention team calls first; ``medium`` (>= 0.10) is
  above the base rate; ``low`` is the rest.
- :func:`canary_mask`: which customers are served the challenger. A stable hash of
  ``customer_id`` (and a salt), so the same customers are in the canary every night and a
  share of s puts each customer in with probability s, independently of their data.
- :func:`top_reasons`: the features that push one customer's score up the most.
- :func:`threshold_contacts` and :func:`contact_quotas`: who the retention team contacts
  tonight, under the operating point of the model that served each customer. A threshold
  rule (``max_f1``, ``recall_target``) flags each customer alone, score >= threshold, so
  each shard sets it. The ``capacity`` rule flags the night's top N by score, which no
  shard can see: the publish sets it over the whole staged night
  (``ScoringStore.publish_night``), from the quotas here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

_UINT64 = 2**64


def assign_risk_bands(
    probabilities: np.ndarray, bands: tuple[tuple[str, float], ...]
) -> np.ndarray:
    """The band name of every probability; ``bands`` are (name, floor), highest floor first."""
    import numpy as np

    names = np.array([name for name, _ in bands], dtype=object)
    floors = np.array([floor for _, floor in bands])
    # On the floors in ascending order, searchsorted(side="right") - 1 is the index of the
    # highest floor <= score. The lowest floor is 0 (policy), so the clip only guards NaN-free
    # scores below 0 that cannot occur.
    index = np.searchsorted(floors[::-1], probabilities, side="right") - 1
    return names[::-1][np.clip(index, 0, len(floors) - 1)]


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: a fixed, well-mixed bijection of uint64 (Steele et al.)."""
    import numpy as np

    with np.errstate(over="ignore"):  # wrap-around multiplication is the point
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def canary_position(customer_ids: np.ndarray, salt: str) -> np.ndarray:
    """Each customer's fixed position in [0, 1): the same for an id and salt on any night,
    any machine and any NumPy version (integer arithmetic only)."""
    import numpy as np

    salt_key = int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little")
    ids = np.asarray(customer_ids, dtype=np.int64).astype(np.uint64)
    hashed = _mix64(ids ^ np.uint64(salt_key))
    # The top 53 bits as a double in [0, 1): exact, no rounding up to 1.0.
    return (hashed >> np.uint64(11)).astype(np.float64) / float(2**53)


def canary_mask(customer_ids: np.ndarray, share: float, salt: str) -> np.ndarray:
    """True for the customers served the challenger: position < share."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"canary share {share} is outside [0, 1]")
    return canary_position(customer_ids, salt) < share


def top_reasons(contributions: np.ndarray, features: list[str], count: int) -> list[list[str]]:
    """Per row, up to ``count`` feature names with the largest positive SHAP contribution,
    strongest first. Features that lower the risk are never a reason."""
    import numpy as np

    if count == 0 or len(contributions) == 0:
        return [[] for _ in range(len(contributions))]
    count = min(count, contributions.shape[1])
    # argpartition then sort the few: O(n * features), not a full sort per row.
    top = np.argpartition(-contributions, count - 1, axis=1)[:, :count]
    top_values = np.take_along_axis(contributions, top, axis=1)
    order = np.argsort(-top_values, axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    top_values = np.take_along_axis(top_values, order, axis=1)
    names = np.asarray(features, dtype=object)
    return [
        [str(name) for name, value in zip(names[row], values, strict=True) if value > 0]
        for row, values in zip(top, top_values, strict=True)
    ]


def threshold_contacts(probabilities: np.ndarray, thresholds: np.ndarray) -> pa.Array:
    """Per customer, score >= the serving model's threshold; null where that threshold is
    NaN (a capacity rule, decided at publish, or a version without an operating point)."""
    import numpy as np
    import pyarrow as pa

    return pa.array(probabilities >= thresholds, pa.bool_(), mask=np.isnan(thresholds))


def contact_quotas(
    capacities: Mapping[str, int], canary_rows: int, night_rows: int
) -> dict[str, int]:
    """How many of the customers it served tonight each capacity-rule model contacts.

    ``capacities``: the models whose rule is ``capacity``, by ``served_by`` (``champion``,
    ``challenger``), with their N. A model serving the whole night contacts its N. The
    challenger serves the ``canary_rows`` of the night's ``night_rows`` customers, and so
    gets that share of its N (rounded); the champion gets its N less the canary's share of
    it, so that two models with the same N contact exactly N together.
    """
    quotas = {}
    for served_by, capacity in capacities.items():
        canary_part = round(capacity * canary_rows / night_rows) if night_rows else 0
        quotas[served_by] = canary_part if served_by == "challenger" else capacity - canary_part
    return quotas
