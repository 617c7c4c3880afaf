"""Scenarios as data: what happens to the simulated base from a start day, read from YAML.

A scenario is identical to the baseline before its start. From the start it may bring
*waves* of extra sign-ups whose attributes (the covariate drivers) are drawn from shifted
distributions, and *hazard changes*: a driver's effect on the churn hazard set to a new
value or multiplied, or the base rate multiplied. A ramp phases both in over some days.

The shipped scenarios (``baseline``, ``acquisition_campaign``, ``price_increase``) are the
files in ``scenarios/`` beside this module; a user's file has the same format (README,
"Scenarios as data"). Every mistake in a file is a :class:`ScenarioError`: one line that
names the file and the field.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from churnops.contracts import ACQUISITION_CHANNELS, PAYMENT_METHODS, PLAN_TYPES, REGIONS

SCENARIOS_DIR = Path(__file__).with_name("scenarios")

# A ramp is phased in by steps, at most this many: each step is one more piecewise-constant
# stretch of every customer's hazard (a column of the churn-day search), so a daily step
# over a long ramp would multiply the memory of that search at 500,000 customers.
MAX_RAMP_STEPS = 8

# Drivers a wave can shift, in the order the simulator draws them for each new customer.
CATEGORICAL_DRIVERS: dict[str, tuple[str, ...]] = {
    "plan": PLAN_TYPES,
    "acquisition_channel": ACQUISITION_CHANNELS,
    "payment_method": PAYMENT_METHODS,
    "region": REGIONS,
}
LATENT_DRIVERS = ("engagement", "adoption", "reliability", "ticket_propensity")
WAVE_DRIVERS = (
    "plan",
    "acquisition_channel",
    "promo",
    "addons_eur",
    "payment_method",
    "region",
    *LATENT_DRIVERS,
)
# Drivers of the churn hazard (population.BASELINE_EFFECTS holds their baseline effects).
BASE_RATE = "base_rate"
HAZARD_DRIVERS: dict[str, tuple[str, ...] | None] = {
    BASE_RATE: None,
    "plan": PLAN_TYPES,
    "payment_method": PAYMENT_METHODS,
    "acquisition_channel": ACQUISITION_CHANNELS,
    "engagement": None,
    "ticket_propensity": None,
    "bill": None,
    "reliability": None,
    "new_customer": None,
    "first_year": None,
    "promo_end": None,
    "disengaged": None,
}


class ScenarioError(ValueError):
    """A scenario file that cannot be used: one line, ``file: field: problem``."""


# ---- how a wave draws one driver: each consumes the random stream exactly as written ----


@dataclass(frozen=True)
class Categorical:
    """A category code: uniform when ``shares`` is None, else by these shares."""

    size: int
    shares: tuple[float, ...] | None = None

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.shares is None:
            return rng.choice(self.size, n)
        return rng.choice(self.size, n, p=list(self.shares))


@dataclass(frozen=True)
class Fixed:
    """The same value for everyone; draws nothing."""

    value: int | bool

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if isinstance(self.value, bool):
            return np.ones(n, dtype=bool) if self.value else np.zeros(n, dtype=bool)
        return np.full(n, self.value)


@dataclass(frozen=True)
class Share:
    """True for about ``share`` of the customers."""

    share: float

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.random(n) < self.share


@dataclass(frozen=True)
class Gamma:
    """A gamma amount; with ``share``, only that share has one (the others 0)."""

    shape: float
    scale: float
    share: float | None = None

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.share is None:
            return rng.gamma(self.shape, self.scale, n)
        return np.where(rng.random(n) < self.share, rng.gamma(self.shape, self.scale, n), 0.0)


@dataclass(frozen=True)
class Normal:
    """A latent trait in standard-deviation units of the baseline."""

    mean: float = 0.0
    sd: float = 1.0

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = rng.standard_normal(n)
        if self.mean == 0.0 and self.sd == 1.0:
            return z.astype(np.float32)
        return (z * self.sd + self.mean).astype(np.float32)


Draw = Categorical | Fixed | Share | Gamma | Normal


# ---- the definition ----


@dataclass(frozen=True)
class Wave:
    """Extra sign-ups every day from the start: ``daily_signup_share`` of the base's size
    a day (Poisson), for ``days`` days (or until the feed ends), with shifted drivers."""

    name: str
    daily_signup_share: float
    days: int | None
    drivers: Mapping[str, Draw]

    def active_on(self, day: int, start: int) -> bool:
        return start <= day and (self.days is None or day < start + self.days)


@dataclass(frozen=True)
class HazardChange:
    """A hazard driver's effect set to ``effect`` or multiplied by ``multiplier``.

    The effect is on the log-hazard scale (per unit of the driver, or while it applies;
    one value per category for a categorical driver); ``base_rate`` only multiplies."""

    driver: str
    effect: float | Mapping[str, float] | None = None
    multiplier: float | None = None


@dataclass(frozen=True)
class Scenario:
    """One scenario: identical to the baseline before ``start``."""

    name: str
    description: str = ""
    start: dt.date | None = None  # None: the configured scenario start
    ramp_days: int = 0
    waves: tuple[Wave, ...] = ()
    hazard: tuple[HazardChange, ...] = ()
    source: str = field(default="", compare=False)

    def ramp_step_offsets(self) -> list[int]:
        """Days after the start on which each ramp step begins (the first is 0)."""
        steps = min(self.ramp_days, MAX_RAMP_STEPS)
        if steps == 0:
            return [0]
        return [-(-k * self.ramp_days // steps) for k in range(steps)]

    def strength(self, days_after_start: int) -> float:
        """How much of the scenario applies that many days after its start: 0 before it,
        then by steps up to 1 once the ramp is over."""
        if days_after_start < 0:
            return 0.0
        offsets = self.ramp_step_offsets()
        reached = sum(1 for offset in offsets if offset <= days_after_start)
        return 1.0 if reached == len(offsets) else reached / len(offsets)


def shipped_scenarios() -> tuple[str, ...]:
    return tuple(sorted(path.stem for path in SCENARIOS_DIR.glob("*.yml")))


def shipped_scenario(name: str) -> Scenario:
    path = SCENARIOS_DIR / f"{name}.yml"
    if not path.is_file():
        known = ", ".join(shipped_scenarios())
        raise ScenarioError(f"unknown scenario {name!r}; known: {known}")
    return load_scenario(path)


# ---- reading a file ----


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """One mapping of the file, read field by field; a problem names where it is."""

    def __init__(
        self,
        raw: Any,
        file: str,
        where: str,
        required: tuple[str, ...] = (),
        optional: tuple[str, ...] = (),
    ) -> None:
        self.file = file
        self.where = where
        if not isinstance(raw, dict):
            raise self._error(where, f"expected a mapping of fields, got {_show(raw)}")
        known = required + optional
        for key in raw:
            if key not in known:
                raise self._error(self.at(str(key)), f"unknown field; known: {', '.join(known)}")
        for key in required:
            if key not in raw:
                raise self._error(self.at(key), "required field is missing")
        self.raw = raw

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _error(self, where: str, problem: str) -> ScenarioError:
        return ScenarioError(f"{self.file}: {where}: {problem}")

    def error(self, key: str, problem: str) -> ScenarioError:
        return self._error(self.at(key), problem)

    def has(self, key: str) -> bool:
        return key in self.raw

    def text(self, key: str, default: str = "") -> str:
        value = self.raw.get(key, default)
        if not isinstance(value, str) or (key in self.raw and not value.strip()):
            raise self.error(key, f"expected a text, got {_show(value)}")
        return " ".join(value.split())

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        minimum: float | None = None,
        above: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.error(key, f"expected a number, got {_show(value)}")
        if minimum is not None and value < minimum:
            raise self.error(key, f"must be at least {minimum:g}, got {value:g}")
        if above is not None and value <= above:
            raise self.error(key, f"must be above {above:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be at most {maximum:g}, got {value:g}")
        return float(value)

    def whole(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {_show(value)}")
        if value < minimum:
            raise self.error(key, f"must be at least {minimum}, got {value}")
        return value

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {_show(value)}")
        return [(f"{self.at(key)}[{i}]", item) for i, item in enumerate(value)]

    def one_of(self, keys: tuple[str, str]) -> str:
        given = [k for k in keys if k in self.raw]
        if len(given) != 1:
            where = self.where or "(top)"
            raise self._error(where, f"give exactly one of {keys[0]!r} or {keys[1]!r}")
        return given[0]


def _unknown(fields: _Fields, key: str, what: str, value: Any, known: tuple[str, ...]) -> None:
    if value not in known:
        raise fields.error(key, f"unknown {what} {_show(value)}; known: {', '.join(known)}")


def _shares(fields: _Fields, key: str, categories: tuple[str, ...]) -> tuple[float, ...]:
    raw = fields.raw[key]
    mix = _Fields(raw, fields.file, fields.at(key), optional=categories)
    shares = tuple(mix.number(c, 0.0, minimum=0.0, maximum=1.0) for c in categories)
    if abs(sum(shares) - 1.0) > 1e-9:
        raise fields.error(key, f"the shares sum to {sum(shares):g}, not 1")
    return shares


def _driver_draw(fields: _Fields, driver: str) -> Draw:
    """How a wave draws ``driver``: its entry under ``drivers:``."""
    file, where, raw = fields.file, fields.at(driver), fields.raw[driver]
    if driver in CATEGORICAL_DRIVERS:
        categories = CATEGORICAL_DRIVERS[driver]
        spec = _Fields(raw, file, where, optional=("mix", "value"))
        if spec.one_of(("mix", "value")) == "value":
            value = spec.raw["value"]
            _unknown(spec, "value", driver.replace("_", " "), value, categories)
            return Fixed(categories.index(value))
        return Categorical(len(categories), _shares(spec, "mix", categories))
    if driver == "promo":
        spec = _Fields(raw, file, where, optional=("share", "value"))
        if spec.one_of(("share", "value")) == "value":
            if not isinstance(spec.raw["value"], bool):
                raise spec.error("value", f"expected true or false, got {_show(spec.raw['value'])}")
            return Fixed(spec.raw["value"])
        return Share(spec.number("share", minimum=0.0, maximum=1.0))
    if driver == "addons_eur":
        spec = _Fields(raw, file, where, required=("gamma",), optional=("share",))
        gamma = _Fields(spec.raw["gamma"], file, spec.at("gamma"), required=("shape", "scale"))
        share = spec.number("share", minimum=0.0, maximum=1.0) if spec.has("share") else None
        return Gamma(gamma.number("shape", above=0.0), gamma.number("scale", above=0.0), share)
    spec = _Fields(raw, file, where, optional=("mean", "sd"))
    return Normal(spec.number("mean", 0.0), spec.number("sd", 1.0, above=0.0))


def _wave(raw: Any, file: str, where: str, index: int) -> Wave:
    fields = _Fields(
        raw,
        file,
        where,
        required=("daily_signup_share",),
        optional=("name", "days", "drivers"),
    )
    raw_drivers = fields.raw.get("drivers", {})
    if isinstance(raw_drivers, dict):
        for driver in raw_drivers:
            if driver not in WAVE_DRIVERS:
                raise fields.error(
                    f"drivers.{driver}",
                    f"unknown driver {_show(driver)}; known: {', '.join(WAVE_DRIVERS)}",
                )
    drivers = _Fields(raw_drivers, file, fields.at("drivers"), optional=WAVE_DRIVERS)
    return Wave(
        name=fields.text("name", f"wave {index + 1}"),
        daily_signup_share=fields.number("daily_signup_share", above=0.0, maximum=1.0),
        days=fields.whole("days", minimum=1) if fields.has("days") else None,
        drivers={d: _driver_draw(drivers, d) for d in WAVE_DRIVERS if d in drivers.raw},
    )


def _hazard_change(raw: Any, file: str, where: str) -> HazardChange:
    fields = _Fields(raw, file, where, required=("driver",), optional=("effect", "multiplier"))
    driver = fields.raw["driver"]
    _unknown(fields, "driver", "driver", driver, tuple(HAZARD_DRIVERS))
    how = fields.one_of(("effect", "multiplier"))
    if how == "multiplier":
        return HazardChange(driver, multiplier=fields.number("multiplier", minimum=0.0))
    if driver == BASE_RATE:
        raise fields.error("effect", "the base rate takes a 'multiplier', not an 'effect'")
    categories = HAZARD_DRIVERS[driver]
    if categories is None:
        return HazardChange(driver, effect=fields.number("effect"))
    effects = _Fields(fields.raw["effect"], file, fields.at("effect"), optional=categories)
    return HazardChange(driver, effect={c: effects.number(c) for c in effects.raw})


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(f"{path}: cannot be read: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ScenarioError(f"{path}: not valid YAML{at}: {problem}") from None


def load_scenario(path: Path) -> Scenario:
    """Read and check a scenario file (raises :class:`ScenarioError`, one line)."""
    file = str(path)
    top = _Fields(
        _read_yaml(path),
        file,
        "",
        required=("name",),
        optional=("description", "start", "ramp_days", "waves", "hazard"),
    )
    start = top.raw.get("start", "configured")
    if start != "configured" and (not isinstance(start, dt.date) or isinstance(start, dt.datetime)):
        raise top.error(
            "start", f"expected a date (YYYY-MM-DD) or 'configured', got {_show(start)}"
        )
    hazard = tuple(_hazard_change(raw, file, where) for where, raw in top.items("hazard"))
    drivers = [change.driver for change in hazard]
    for i, driver in enumerate(drivers):
        if driver in drivers[:i]:
            raise top.error(f"hazard[{i}].driver", f"{driver!r} is changed twice")
    return Scenario(
        name=top.text("name"),
        description=top.text("description", ""),
        start=None if start == "configured" else start,
        ramp_days=top.whole("ramp_days", 0, minimum=0),
        waves=tuple(
            _wave(raw, file, where, i) for i, (where, raw) in enumerate(top.items("waves"))
        ),
        hazard=hazard,
        source=file,
    )
