"""Who drifted, and can a retrain learn from them yet?

When a night's drift fires the retraining trigger, the retrain only learns something if
the customers that moved have matured labels. A campaign's new customers have none for 90
days: a retrain on the same matured labels the champion had carries no information.

The drifted population is found by a domain classifier: a small LightGBM model told the
customers of the newest night whose labels have matured (tonight - 90 days: what a retrain
tonight can learn from) (0) from tonight's customers (1) on the drifted features. A
customer belongs to the population when the classifier finds it more "tonight-like" than
all but ``REFERENCE_FALSE_SHARE`` of that labelled night: on a night like it, that picks
about that share of the base; on a campaign night, the wave of new customers. The
labelled night, not the champion's training sample, is the reference: against a sample
months old, calendar-bound features (tenure, signup cohort) tell every customer apart and
the whole base would be "drifted". Chosen over per-feature bins because a campaign moves
features together (tenure, plan, channel): the classifier finds the combination, where
bins would count each feature's tail apart.

Its matured labels are its customers with a label on an as-of date after the champion's
training cutoff that has matured by tonight (90 days old): the examples a retrain would
have tonight that the champion did not. The threshold lets ``REFERENCE_FALSE_SHARE`` of
the unchanged customers in by chance, and they are labelled: that share of the night's
labelled customers is taken off, so a wave of new customers counts as unlabelled at
20,000 customers and at 5 million alike.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

# The share of the training sample the population threshold lets through: the false
# positives of an unchanged night.
REFERENCE_FALSE_SHARE = 0.05
# Small on purpose: it runs only on nights whose drift fires, on the whole night.
_CLASSIFIER_PARAMS = {
    "objective": "binary",
    "num_leaves": 15,
    "learning_rate": 0.1,
    "min_data_in_leaf": 100,
    "feature_fraction": 1.0,
    "verbose": -1,
    "seed": 7,
    "deterministic": True,
    "num_threads": 2,
}
_CLASSIFIER_ROUNDS = 60


@dataclass(frozen=True)
class DriftedPopulation:
    as_of_date: dt.date
    model_version: str
    features: tuple[str, ...]
    customers: int  # tonight's customers in the population
    base: int  # tonight's customers
    labelled: int  # of them, with a matured label after the champion's cutoff
    # The labelled customers an unchanged night's population holds by chance.
    labelled_by_chance: int
    labels_since: dt.date | None

    @property
    def new_labelled(self) -> int:
        """The matured labels the drift brought: beyond what chance puts in."""
        return max(0, self.labelled - self.labelled_by_chance)

    def describe(self) -> str:
        since = f" since {self.labels_since}" if self.labels_since else ""
        return (
            f"the drifted population ({self.customers:,} of {self.base:,} customers, on "
            f"{', '.join(self.features)}) has {self.new_labelled:,} customers with a matured "
            f"label{since} beyond the {self.labelled_by_chance:,} chance lets in"
        )


def population_mask(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    features: list[str],
    categorical: list[str],
) -> np.ndarray:
    """Which rows of ``current`` the domain classifier places in the drifted population."""
    import lightgbm as lgb
    import pandas as pd

    both = pd.concat([reference[features], current[features]], ignore_index=True)
    for column in categorical:
        if column in both.columns:
            both[column] = both[column].astype("category")
    target = np.r_[np.zeros(len(reference)), np.ones(len(current))]
    # Each side weighs the same in total: the night is usually far larger than the sample.
    weight = np.r_[
        np.full(len(reference), 0.5 / max(len(reference), 1)),
        np.full(len(current), 0.5 / max(len(current), 1)),
    ] * len(both)
    # Cross-fitted: each half of the rows is scored by a model trained on the other half.
    # In-sample, the model would learn tonight's own rows and let more of the unchanged
    # customers in than the threshold allows on the (equally in-sample) reference.
    fold = np.arange(len(both)) % 2
    tonight_like = np.empty(len(both))
    for held_out in (0, 1):
        train = fold != held_out
        data = lgb.Dataset(
            both[train],
            label=target[train],
            weight=weight[train],
            categorical_feature=[c for c in categorical if c in both.columns],
        )
        booster = lgb.train(_CLASSIFIER_PARAMS, data, num_boost_round=_CLASSIFIER_ROUNDS)
        tonight_like[~train] = booster.predict(both[~train])
    threshold = np.quantile(tonight_like[: len(reference)], 1.0 - REFERENCE_FALSE_SHARE)
    return np.asarray(tonight_like[len(reference) :] > threshold)


def find_drifted_population(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    drifted_features: list[str],
    categorical: list[str],
    labelled_customers: set[int] | frozenset[int],
    *,
    as_of_date: dt.date,
    model_version: str,
    labels_since: dt.date | None,
) -> DriftedPopulation:
    """The population (``current`` has ``customer_id``) and how many of it are labelled."""
    mask = population_mask(reference, current, drifted_features, categorical)
    is_labelled = np.isin(
        current["customer_id"].to_numpy(), np.fromiter(labelled_customers, dtype=np.int64)
    )
    return DriftedPopulation(
        as_of_date=as_of_date,
        model_version=model_version,
        features=tuple(drifted_features),
        customers=int(mask.sum()),
        base=len(current),
        labelled=int((is_labelled & mask).sum()),
        labelled_by_chance=round(REFERENCE_FALSE_SHARE * int(is_labelled.sum())),
        labels_since=labels_since,
    )
