"""The shipped scenario definitions reproduce, byte for byte, the scenarios as they were
hard-coded before scenarios became data.

The digests below were produced by this file's ``landing_digests`` and
``population_digest`` run on the simulator at commit 7ba63ce (before
``churnops/simulate/scenarios/`` existed), with::

    .venv/bin/python -c "from tests.unit.simulate.test_scenario_bytes import print_digests; print_digests()"

A change that moves any row of any landing table, or any customer's attributes or churn
day over the 120 days after the scenario's start, changes a digest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from churnops.contracts import LANDING_TABLES
from churnops.landing import drop_files
from churnops.settings import SimulationSettings
from churnops.simulate import simulate_days
from churnops.simulate.population import build_population, day_index

pytestmark = pytest.mark.unit

SETTINGS = SimulationSettings(
    customers=1_500,
    seed=5,
    history_start=dt.date(2025, 1, 1),
    history_days=60,
    scenario_start=dt.date(2025, 1, 21),
)
# A few days around the start: the two days before it, its first eight days.
WINDOW = (dt.date(2025, 1, 19), dt.date(2025, 1, 28))
POPULATION_DAYS_AFTER_START = 120
NAMES = ("baseline", "acquisition_campaign", "price_increase")

EXPECTED_LANDING: dict[str, dict[str, str]] = {
    "baseline": {
        "churn_events": "77968ec3cd5b7a5484a16512061c8d92cc9fa989d6239164d04c5a8041d16009",
        "customers": "9ca9646c267252dd0879d34cb3587c4dd347881a8d813595b41e326a5ee3d2de",
        "invoices": "e529bd42b743e0b08128d1e3cfa1a6544911759978d920b5808e542c730ae7a4",
        "payments": "37c64f5aab49487d863db896911f2b3ca51730e7ae84c35385f337c4a6f254c5",
        "support_tickets": "50e04e8fd91221987a507d8ad5f2e47e44b39cf3e72bc52d7d4f5993f71560a3",
        "usage_daily": "a998e4908abb36d4d0bfacf1851e3c573a0592472caa6d4dbbe5cc07c20ef999",
    },
    "acquisition_campaign": {
        "churn_events": "7089c9bafa03ba459f168921d5538c9d77fbd6b58e6b8f81113f1504cab47029",
        "customers": "2bc8ab4a3a21b2abb8d48986893fa92af2d5e11a63fe6696e8b0daca290d7a2d",
        "invoices": "06c3172f1e42e1b56e0d509506757d91319bd9caa8e7e8c2da6ede782f1585c7",
        "payments": "e0f69d10167486394f06be867eb6d06d30bbaee58bbcf3ab22be9bcf035c1745",
        "support_tickets": "36101fb22ce0295cb35f90d9c75d1e66a7834f478745e3569f87b049d98b7c71",
        "usage_daily": "f345a5ba8e49b1718419411e8990b7b526dcd3a28a73bd6100fff079f8689095",
    },
    "price_increase": {
        "churn_events": "89cc72bed40ebfae9e774c66cd74b3bc7d9ef3426644e582616cf8fc6cf3070a",
        "customers": "9ca9646c267252dd0879d34cb3587c4dd347881a8d813595b41e326a5ee3d2de",
        "invoices": "e529bd42b743e0b08128d1e3cfa1a6544911759978d920b5808e542c730ae7a4",
        "payments": "bf6bdb8d4999e92ee5892a46142cfda9ac8018d20052ca37246c274c3601fae2",
        "support_tickets": "fee47bb66ac0b60e2081c6f02a2b85f3a58175fede51feca098fd91860133350",
        "usage_daily": "32595de4423883be0ce2b49265a9de59d6e82906e6a469a485879c5356b28ab6",
    },
}
EXPECTED_POPULATION: dict[str, str] = {
    "baseline": "82bcf03e425cd33822815851c713966d6cd2b743b6792390ecad7d8fa9c62499",
    "acquisition_campaign": "c13d882cd84a4d65c5f02854835a1e97beddd5ba3719d61905cec6507d747661",
    "price_increase": "4dcc7340fd524427aa6af25d3028b8863c0884966fb7525404f0dc7097522be1",
}


def landing_digests(settings: SimulationSettings, root: Path) -> dict[str, str]:
    """SHA-256 of each landing table's schema and rows over ``WINDOW``, day by day."""
    simulate_days(settings, *WINDOW, root)
    digests = {}
    for table in sorted(LANDING_TABLES):
        sha = hashlib.sha256()
        day = WINDOW[0]
        while day <= WINDOW[1]:
            (path,) = drop_files(root, table, day)
            data = pq.read_table(path)
            sha.update(str(data.schema).encode())
            sha.update(repr(data.to_pylist()).encode())
            day += dt.timedelta(days=1)
        digests[table] = sha.hexdigest()
    return digests


def population_digest(settings: SimulationSettings) -> str:
    """SHA-256 of every array of the population up to 120 days after the scenario start."""
    last = day_index(settings, settings.effective_scenario_start) + POPULATION_DAYS_AFTER_START
    pop = build_population(settings, last)
    sha = hashlib.sha256()
    for field in dataclasses.fields(pop):
        value = getattr(pop, field.name)
        sha.update(field.name.encode())
        if isinstance(value, np.ndarray):
            sha.update(str(value.dtype).encode())
            sha.update(np.ascontiguousarray(value).tobytes())
        else:
            sha.update(repr(value).encode())
    return sha.hexdigest()


def print_digests() -> None:
    import tempfile

    for name in NAMES:
        settings = dataclasses.replace(SETTINGS, scenario=name)
        with tempfile.TemporaryDirectory() as tmp:
            print(name, landing_digests(settings, Path(tmp)))
        print(name, population_digest(settings))


@pytest.mark.parametrize("name", NAMES)
def test_shipped_scenario_writes_the_same_landing_rows(tmp_path: Path, name: str) -> None:
    settings = dataclasses.replace(SETTINGS, scenario=name)
    assert landing_digests(settings, tmp_path) == EXPECTED_LANDING[name]


@pytest.mark.parametrize("name", NAMES)
def test_shipped_scenario_builds_the_same_population(name: str) -> None:
    settings = dataclasses.replace(SETTINGS, scenario=name)
    assert population_digest(settings) == EXPECTED_POPULATION[name]


def test_the_window_tells_the_scenarios_apart() -> None:
    """Otherwise the digests above could not catch a scenario that stopped doing anything."""
    assert len({str(EXPECTED_LANDING[n]) for n in NAMES}) == len(NAMES)
    assert len(set(EXPECTED_POPULATION.values())) == len(NAMES)
