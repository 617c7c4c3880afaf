"""The drifted population: the drifted features' over-represented bins find a wave of new
kinds of customers among tonight's, and few customers on a night like the reference."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from churnops.monitor.population import find_drifted_population, population_masks

pytestmark = pytest.mark.unit


def customers(rng: np.random.Generator, rows: int, start_id: int, wave: bool) -> pd.DataFrame:
    """Tenure and plan of a base; a wave is short-tenured and on the basic plan."""
    return pd.DataFrame(
        {
            "customer_id": np.arange(start_id, start_id + rows),
            "tenure_days": rng.integers(0, 30, rows) if wave else rng.integers(30, 900, rows),
            "plan": pd.Categorical(
                np.where(wave, "basic", rng.choice(["basic", "standard", "premium"], rows)),
                categories=["basic", "standard", "premium"],
            ),
            "logins_30d": rng.poisson(12, rows),
        }
    )


def test_the_wave_is_the_population_and_its_labels_are_counted() -> None:
    rng = np.random.default_rng(3)
    reference = customers(rng, 6_000, 0, wave=False)
    base = customers(rng, 8_000, 100_000, wave=False)
    wave = customers(rng, 2_000, 200_000, wave=True)
    tonight = pd.concat([base, wave], ignore_index=True)
    by_chance, mask = population_masks(reference, tonight, ["tenure_days", "plan"], ["plan"])
    assert mask[8_000:].mean() >= 0.95  # the wave
    assert mask[:8_000].mean() <= 0.10  # the base: false positives
    assert by_chance.mean() <= 0.10 and len(by_chance) == len(reference)
    # The base is labelled; the wave is new: two of its customers have a label.
    labelled = set(range(100_000, 108_000)) | {200_000, 200_001}
    population = find_drifted_population(
        reference,
        tonight,
        ["tenure_days", "plan"],
        ["plan"],
        labelled,
        as_of_date=dt.date(2026, 3, 1),
        model_version="3",
        labels_since=dt.date(2025, 11, 1),
    )
    assert (population.customers, population.base) == (int(mask.sum()), 10_000)
    assert population.labelled == int(mask[:8_000].sum()) + int(mask[8_000:8_002].sum())
    # Chance lets its share of the 8,002 labelled customers in: the wave brought almost
    # no label of its own.
    assert population.labelled_by_chance == round(by_chance.mean() * 8_002)
    assert population.new_labelled <= 0.03 * 8_000
    assert population.describe() == (
        f"the drifted population ({population.customers:,} of 10,000 customers, on "
        f"tenure_days, plan) has {population.new_labelled:,} customers with a matured label "
        f"since 2025-11-01 beyond the {population.labelled_by_chance:,} chance lets in"
    )


def test_an_unchanged_night_has_only_the_false_share() -> None:
    rng = np.random.default_rng(4)
    reference = customers(rng, 6_000, 0, wave=False)
    tonight = customers(rng, 8_000, 100_000, wave=False)
    population = find_drifted_population(
        reference,
        tonight,
        ["tenure_days", "plan"],
        ["plan"],
        set(),
        as_of_date=dt.date(2026, 3, 1),
        model_version="3",
        labels_since=None,
    )
    assert population.customers < 0.10 * 8_000
    assert population.labelled == population.labelled_by_chance == 0
