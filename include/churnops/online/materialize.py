"""Materialize one night's ``fct_customer_features`` into the online store."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from churnops.features.store import FeatureStore
from churnops.online.store import MaterializeResult, OnlineStore

log = logging.getLogger(__name__)


def night_features(table_columns: list[str]) -> list[str]:
    """The feature columns of the feature table, in its order (keys and label left out)."""
    from churnops.train.frame import NON_FEATURE_COLUMNS

    return [c for c in table_columns if c not in NON_FEATURE_COLUMNS]


def materialize_night(
    features: FeatureStore,
    online: OnlineStore,
    as_of_date: dt.date,
    *,
    say: Callable[[str], object] = log.info,
) -> MaterializeResult:
    """The night's feature rows, encoded as the batch encodes them
    (``churnops.score.fastpath.feature_matrix``), written and switched to atomically."""
    from churnops.score.fastpath import feature_matrix
    from churnops.score.nightly import read_night_features

    table = read_night_features(features, as_of_date)
    names = night_features(table.column_names)
    matrix = feature_matrix(table, names)
    result = online.materialize(as_of_date, table.column("customer_id").to_numpy(), matrix, names)
    say(f"{result.message} in {result.seconds:.1f} s")
    return result
