"""Scenario definitions a user writes: what they change, how a ramp phases them in, and
the one-line error a bad file gets from ``churnops simulate --scenario-file``."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from churnops.cli import main
from churnops.contracts import ACQUISITION_CHANNELS
from churnops.settings import SCENARIOS, SimulationSettings
from churnops.simulate.population import build_population, day_index, scenario_of
from churnops.simulate.scenario import (
    MAX_RAMP_STEPS,
    ScenarioError,
    load_scenario,
    shipped_scenario,
    shipped_scenarios,
)
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.unit

START = dt.date(2025, 3, 2)
SETTINGS = SimulationSettings(
    customers=3_000, seed=3, history_start=dt.date(2025, 1, 1), scenario_start=START
)
START_DAY = day_index(SETTINGS, START)


def write(tmp_path: Path, text: str, name: str = "my_scenario.yml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def with_file(path: Path) -> SimulationSettings:
    return dataclasses.replace(SETTINGS, scenario_file=path)


def churned_between(settings: SimulationSettings, first: int, last: int) -> int:
    pop = build_population(settings, last)
    return int(((pop.churn_day >= first) & (pop.churn_day <= last)).sum())


# ------------------------------------------------------------------ the shipped files


def test_every_scenario_name_the_settings_accept_is_a_shipped_file() -> None:
    assert shipped_scenarios() == tuple(sorted(SCENARIOS))
    for name in SCENARIOS:
        assert shipped_scenario(name).name == name


def test_a_file_beats_the_named_scenario(tmp_path: Path) -> None:
    path = write(tmp_path, "name: mine\n")
    settings = dataclasses.replace(with_file(path), scenario="price_increase")
    assert scenario_of(settings).name == "mine"
    assert scenario_of(dataclasses.replace(settings, scenario_file=None)).name == "price_increase"


# ------------------------------------------------------------------ what a file changes


def test_doubling_the_base_rate_raises_the_churn_count(tmp_path: Path) -> None:
    path = write(tmp_path, "name: double\nhazard:\n  - driver: base_rate\n    multiplier: 2\n")
    before = churned_between(SETTINGS, START_DAY - 30, START_DAY - 1)
    assert churned_between(with_file(path), START_DAY - 30, START_DAY - 1) == before
    baseline = churned_between(SETTINGS, START_DAY, START_DAY + 59)
    doubled = churned_between(with_file(path), START_DAY, START_DAY + 59)
    assert doubled > 1.5 * baseline, (baseline, doubled)


def test_a_ramp_phases_a_hazard_change_in(tmp_path: Path) -> None:
    step = "name: x\nramp_days: {}\nhazard:\n  - driver: base_rate\n    multiplier: 3\n"
    sudden = with_file(write(tmp_path, step.format(0), "sudden.yml"))
    ramped = with_file(write(tmp_path, step.format(40), "ramped.yml"))
    first_fortnight = (START_DAY, START_DAY + 13)
    base = churned_between(SETTINGS, *first_fortnight)
    slow = churned_between(ramped, *first_fortnight)
    fast = churned_between(sudden, *first_fortnight)
    assert base < slow < fast, (base, slow, fast)


def test_ramp_strength_rises_by_steps_to_full() -> None:
    scenario = dataclasses.replace(shipped_scenario("price_increase"), ramp_days=30)
    strengths = [scenario.strength(d) for d in range(-1, 35)]
    assert strengths[0] == 0.0
    assert strengths[1] == 1 / MAX_RAMP_STEPS
    assert all(a <= b for a, b in zip(strengths, strengths[1:], strict=False))
    assert len(set(strengths[1:])) == MAX_RAMP_STEPS
    assert scenario.strength(29) == 1.0 and scenario.strength(25) < 1.0
    assert dataclasses.replace(scenario, ramp_days=0).strength(0) == 1.0


def test_a_wave_brings_customers_with_its_shifted_drivers(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
name: partner_wave
start: 2025-03-02
waves:
  - daily_signup_share: 0.005
    days: 10
    drivers:
      acquisition_channel: {value: partner}
      engagement: {mean: -1.0, sd: 0.5}
      region: {mix: {north: 1.0}}
""",
    )
    settings = dataclasses.replace(with_file(path), scenario_start=None)
    last = START_DAY + 20
    pop, base = build_population(settings, last), build_population(SETTINGS, last)
    partner = ACQUISITION_CHANNELS.index("partner")
    in_wave = (pop.signup_day >= START_DAY) & (pop.signup_day < START_DAY + 10)
    extra = int(in_wave.sum()) - int(
        ((base.signup_day >= START_DAY) & (base.signup_day < START_DAY + 10)).sum()
    )
    assert 100 <= extra <= 200, extra  # about 0.5% of 3,000 a day for 10 days
    assert (pop.channel[in_wave] == partner).mean() > (base.channel == partner).mean() + 0.3
    after = (pop.signup_day >= START_DAY + 10) & (pop.signup_day <= last)
    assert (pop.channel[after] == partner).mean() < 0.3  # the wave is over
    wave_rows = in_wave & (pop.channel == partner) & (pop.region == 0)
    assert np.mean(pop.engagement[wave_rows]) < -0.6


def test_the_shipped_campaign_is_a_wave_of_discounted_premium_bundles() -> None:
    campaign = shipped_scenario("acquisition_campaign")
    (wave,) = campaign.waves
    assert (wave.days, wave.daily_signup_share) == (45, 0.01)
    assert not campaign.hazard and campaign.start is None


# ------------------------------------------------------------------ bad files, one line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "name: x\nsart: 2025-01-01\n",
            "my_scenario.yml: sart: unknown field",
            id="unknown-field",
        ),
        pytest.param(
            "name: x\nhazard:\n  - driver: foo\n    multiplier: 2\n",
            "my_scenario.yml: hazard[0].driver: unknown driver 'foo'; known: base_rate",
            id="unknown-hazard-driver",
        ),
        pytest.param(
            "name: x\nwaves:\n  - daily_signup_share: 0.01\n    drivers: {shoe_size: {mean: 1}}\n",
            "my_scenario.yml: waves[0].drivers.shoe_size: unknown driver 'shoe_size'; known: plan",
            id="unknown-wave-driver",
        ),
        pytest.param(
            "name: x\nramp_days: ten\n",
            "my_scenario.yml: ramp_days: expected a whole number, got 'ten'",
            id="wrong-type",
        ),
        pytest.param(
            "name: x\nwaves:\n  - days: 10\n",
            "my_scenario.yml: waves[0].daily_signup_share: required field is missing",
            id="missing-field",
        ),
        pytest.param(
            "name: x\nwaves:\n  - daily_signup_share: 0.01\n"
            "    drivers: {plan: {mix: {basic: 0.5, premium: 0.2}}}\n",
            "my_scenario.yml: waves[0].drivers.plan.mix: the shares sum to 0.7, not 1",
            id="mix-not-summing",
        ),
        pytest.param(
            "name: x\nhazard:\n  - driver: bill\n    effect: 1\n    multiplier: 2\n",
            "my_scenario.yml: hazard[0]: give exactly one of 'effect' or 'multiplier'",
            id="effect-and-multiplier",
        ),
        pytest.param(
            "name: x\nhazard: [driver: bill\n",
            "my_scenario.yml: not valid YAML at line",
            id="not-yaml",
        ),
    ],
)
def test_a_bad_file_gets_one_line_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as raised:
        load_scenario(path)
    assert f"{tmp_path}/{expected}" in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name: x\nsart: 2025-01-01\n", "sart: unknown field"),
        ("name: x\nhazard:\n  - driver: foo\n    multiplier: 2\n", "hazard[0].driver: unknown"),
        ("name: x\nramp_days: ten\n", "ramp_days: expected a whole number"),
        ("name: x\nwaves:\n  - days: 10\n", "waves[0].daily_signup_share: required field"),
    ],
    ids=["unknown-field", "unknown-driver", "wrong-type", "missing-field"],
)
def test_the_cli_refuses_a_bad_file_in_one_line(tmp_path: Path, text: str, field: str) -> None:
    path = write(tmp_path, text)
    line = cli_one_line_error(
        ["simulate", "--days", "1", "--scenario-file", str(path)],
        {"CHURNOPS_STATE_DIR": str(tmp_path / "state")},
    )
    assert line.startswith(f"churnops simulate: {path}: {field}"), line
    assert not (tmp_path / "state" / "data" / "landing").exists()


def test_the_cli_runs_a_users_file(tmp_path: Path, capsys, monkeypatch) -> None:
    path = write(tmp_path, "name: double\nhazard:\n  - driver: base_rate\n    multiplier: 2\n")
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "state"))
    args = ["simulate", "--customers", "300", "--days", "1", "--scenario-start", "2025-01-01"]
    assert main([*args, "--scenario", "price_increase", "--scenario-file", str(path)]) == 0
    assert "(scenario double, from 2025-01-01;" in capsys.readouterr().out
    # A shipped scenario named on the command line beats a file from the environment.
    monkeypatch.setenv("CHURNOPS_SIM_SCENARIO_FILE", str(path))
    assert main([*args, "--scenario", "price_increase"]) == 0
    assert "(scenario price_increase, from 2025-01-01;" in capsys.readouterr().out
    assert main(args) == 0
    assert "(scenario double, from 2025-01-01;" in capsys.readouterr().out


def test_the_readme_example_is_a_valid_scenario_that_runs(tmp_path: Path) -> None:
    from tests.conftest import PROJECT_DIR

    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Scenarios as data", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    scenario = load_scenario(write(tmp_path, example))
    assert (scenario.name, scenario.ramp_days, len(scenario.waves)) == ("winter_churn", 21, 1)
    assert [c.driver for c in scenario.hazard] == ["base_rate", "bill", "plan"]
    later = churned_between(with_file(tmp_path / "my_scenario.yml"), START_DAY, START_DAY + 59)
    assert later > churned_between(SETTINGS, START_DAY, START_DAY + 59)


def test_the_closed_loop_keeps_a_users_scenario_file(tmp_path: Path) -> None:
    from churnops.orchestration.closed_loop import with_campaign
    from churnops.settings import load_settings

    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    assert with_campaign(settings, 14).simulation.scenario == "acquisition_campaign"
    mine = dataclasses.replace(settings.simulation, scenario_file=tmp_path / "mine.yml")
    kept = with_campaign(dataclasses.replace(settings, simulation=mine), 14)
    assert kept.simulation == mine
