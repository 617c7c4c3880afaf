"""Who the customers are, what they are like, and when each one churns.

The whole population is a pure function of the settings (seed, size, scenario): every
sign-up block draws from its own random stream keyed by (seed, stream, day), so any day
of the feed can be generated on its own and gives the same rows as a full run. What a
scenario changes (waves of sign-ups with shifted drivers, changed hazard effects) comes
from its definition (``churnops.simulate.scenario``); the baseline is this module.

Churn is a proportional-hazards process whose daily hazard is piecewise constant per
customer, so each churn day is found exactly from the cumulative hazard in O(segments)
instead of a day-by-day loop. What drives the hazard is also what the customer's
behaviour shows, with noise, so a model can learn it:

- low engagement (fewer logins, calls, features used) and *disengagement*: from an onset
  day engagement ramps down over ~6 weeks, support tickets (often cancellation questions)
  rise, some downgrade their plan, and the churn hazard jumps;
- unreliable payers (late payments) and high bills;
- the first 90 days and the end of a sign-up discount;
- plan, payment method and acquisition channel;
- plus an unobserved frailty, so the signal is learnable but far from perfect.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from churnops.contracts import ACQUISITION_CHANNELS, PAYMENT_METHODS, PLAN_TYPES, REGIONS
from churnops.settings import SimulationSettings
from churnops.simulate.scenario import (
    BASE_RATE,
    HAZARD_DRIVERS,
    Categorical,
    Draw,
    Gamma,
    Normal,
    Scenario,
    Share,
    load_scenario,
    shipped_scenario,
)

NEVER = np.int32(2**30)  # a day index that is never reached

# Random streams: each (stream, day) pair gets its own generator.
STREAM_BASE = 0
STREAM_ARRIVALS = 1
STREAM_FIRST_WAVE = 2  # the acquisition campaign's stream since before scenarios were data
STREAM_LATER_WAVES = 1000  # + the wave's position: clear of every other stream
STREAM_USAGE = 10
STREAM_TICKETS = 11
STREAM_INVOICES = 12
STREAM_CORRUPT = 20

PLAN_FEES_EUR = np.array([19.99, 34.99, 59.99])  # basic, standard, premium
PROMO_DISCOUNT_SHARE = 0.30
PROMO_DAYS = 90

# ---- hazard model (log scale); calibrated so 90-day churn of the base is about 8% ----
BASE_DAILY_HAZARD = 0.00022
PLAN_EFFECT = np.array([0.35, 0.0, -0.25])
PAYMENT_EFFECT = np.array([0.10, -0.35, 0.15, 0.45])  # card, direct_debit, paypal, invoice
CHANNEL_EFFECT = np.array([0.0, 0.30, 0.40, -0.35, 0.10, 0.55])
ENGAGEMENT_EFFECT = -1.5  # per sd of baseline engagement
RELIABILITY_EFFECT = -0.45  # per sd of payment reliability (unreliable -> late payments)
TICKET_PROPENSITY_EFFECT = 0.25
BILL_EFFECT = 0.15  # per 20 EUR of monthly bill above 40 EUR
DISENGAGED_EFFECT = 3.9
NEW_CUSTOMER_EFFECT = 0.8  # first 90 days
FIRST_YEAR_EFFECT = 0.25  # days 90..365
PROMO_END_EFFECT = 0.45  # the 90 days after a sign-up discount ends
FRAILTY_SD = 0.25  # what no feature can see

DISENGAGEMENT_MEAN_DAYS = 1200.0
# Whatever else a customer is like, once disengaged they leave within months: without this
# floor, engaged-looking customers who disengaged would linger for years, and their share
# of the base would grow for as long as the feed runs (a baseline that drifts by itself).
DISENGAGED_MIN_DAILY_HAZARD = 1 / 90
DISENGAGEMENT_RAMP_DAYS = 21.0
# Behaviour turns before the customer leaves: the hazard jumps this long after the onset.
DISENGAGED_HAZARD_DELAY_DAYS = 20

# The hazard's drivers by the names a scenario changes them with (scenario.HAZARD_DRIVERS).
Effects = Mapping[str, "float | np.ndarray"]
BASELINE_EFFECTS: Effects = {
    BASE_RATE: BASE_DAILY_HAZARD,
    "plan": PLAN_EFFECT,
    "payment_method": PAYMENT_EFFECT,
    "acquisition_channel": CHANNEL_EFFECT,
    "engagement": ENGAGEMENT_EFFECT,
    "ticket_propensity": TICKET_PROPENSITY_EFFECT,
    "bill": BILL_EFFECT,
    "reliability": RELIABILITY_EFFECT,
    "new_customer": NEW_CUSTOMER_EFFECT,
    "first_year": FIRST_YEAR_EFFECT,
    "promo_end": PROMO_END_EFFECT,
    "disengaged": DISENGAGED_EFFECT,
}

# How each sign-up's drivers are drawn (a wave replaces some: scenario.WAVE_DRIVERS).
BASELINE_DRAWS: Mapping[str, Draw] = {
    "plan": Categorical(3, (0.40, 0.40, 0.20)),
    # The first five channels: "campaign" is only ever a wave's.
    "acquisition_channel": Categorical(5, (0.35, 0.22, 0.13, 0.18, 0.12)),
    "promo": Share(0.25),
    "addons_eur": Gamma(2.0, 5.0, share=0.55),
    "payment_method": Categorical(4, (0.40, 0.30, 0.18, 0.12)),
    "region": Categorical(len(REGIONS)),
    "engagement": Normal(),
    "adoption": Normal(),
    "reliability": Normal(),
    "ticket_propensity": Normal(),
}


def day_index(settings: SimulationSettings, day: dt.date) -> int:
    return (day - settings.history_start).days


def day_of(settings: SimulationSettings, index: int) -> dt.date:
    return settings.history_start + dt.timedelta(days=int(index))


def rng_for(settings: SimulationSettings, stream: int, index: int) -> np.random.Generator:
    # SeedSequence needs non-negative entries; shift day indices so pre-history days work too.
    return np.random.default_rng([settings.seed, stream, index + 100_000])


@dataclass
class Population:
    """Every customer the feed will ever know up to a day, as parallel arrays."""

    customer_id: np.ndarray  # int64
    signup_day: np.ndarray  # int32, day index; negative = before the feed started
    plan0: np.ndarray  # int8 code into PLAN_TYPES at sign-up
    payment0: np.ndarray  # int8 code into PAYMENT_METHODS at sign-up
    channel: np.ndarray  # int8 code into ACQUISITION_CHANNELS
    region: np.ndarray  # int8 code into REGIONS
    is_promo: np.ndarray  # bool
    addon_eur: np.ndarray  # float64, monthly add-ons on top of the plan fee
    engagement: np.ndarray  # float32, baseline engagement (sd units)
    adoption: np.ndarray  # float32, appetite for product features
    reliability: np.ndarray  # float32, payment reliability (sd units)
    ticket_propensity: np.ndarray  # float32
    onset_day: np.ndarray  # int32, disengagement onset (NEVER if none)
    plan_change_day: np.ndarray  # int32
    new_plan: np.ndarray  # int8
    payment_change_day: np.ndarray  # int32
    new_payment: np.ndarray  # int8
    churn_reason: np.ndarray  # int8 code into CHURN_REASONS
    churn_day: np.ndarray  # int32, NEVER if no churn up to the population's last day
    last_day: int

    def __len__(self) -> int:
        return len(self.customer_id)

    def active_on(self, day: int) -> np.ndarray:
        """Indices of customers active at the end of ``day`` (signed up, not yet churned)."""
        return np.flatnonzero((self.signup_day <= day) & (self.churn_day > day))

    def plan_on(self, idx: np.ndarray, day: int) -> np.ndarray:
        changed = self.plan_change_day[idx] <= day
        return np.where(changed, self.new_plan[idx], self.plan0[idx])

    def payment_on(self, idx: np.ndarray, day: int) -> np.ndarray:
        changed = self.payment_change_day[idx] <= day
        return np.where(changed, self.new_payment[idx], self.payment0[idx])

    def engagement_on(self, idx: np.ndarray, day: int) -> np.ndarray:
        ramp = np.clip((day - self.onset_day[idx]) / DISENGAGEMENT_RAMP_DAYS, 0.0, 1.0)
        return self.engagement[idx] - 1.8 * ramp

    def disengaged_on(self, idx: np.ndarray, day: int) -> np.ndarray:
        return self.onset_day[idx] <= day


def _draw_block(
    rng: np.random.Generator,
    n: int,
    signup_day: np.ndarray,
    feed_day: int,
    draws: Mapping[str, Draw] = BASELINE_DRAWS,
) -> dict[str, np.ndarray]:
    """Attributes of ``n`` customers who sign up on ``signup_day`` (array).

    The drivers are drawn in this order whatever ``draws`` says: the stream, and so every
    later draw, depends on it."""
    plan0 = draws["plan"].draw(rng, n)
    channel = draws["acquisition_channel"].draw(rng, n)
    is_promo = draws["promo"].draw(rng, n)
    addon = draws["addons_eur"].draw(rng, n)
    payment0 = draws["payment_method"].draw(rng, n)
    region = draws["region"].draw(rng, n)
    engagement = draws["engagement"].draw(rng, n)
    adoption = draws["adoption"].draw(rng, n)
    reliability = draws["reliability"].draw(rng, n)
    ticket_propensity = draws["ticket_propensity"].draw(rng, n)
    frailty = rng.standard_normal(n) * FRAILTY_SD
    exposure = rng.exponential(1.0, n)  # the cumulative hazard at which each one churns

    # Disengagement can start any time after sign-up (for the base, also before the feed
    # starts: their past decides who is still a customer on day 0, see _base_block).
    first_day = np.maximum(signup_day, feed_day)
    onset = signup_day + rng.exponential(DISENGAGEMENT_MEAN_DAYS, n)
    onset_day = np.where(rng.random(n) < 0.9, onset, NEVER).astype(np.int64)
    onset_day = np.maximum(onset_day, signup_day + 14)

    downgrade = (onset_day < NEVER) & (plan0 > 0) & (rng.random(n) < 0.4)
    upgrade = ~downgrade & (plan0 < 2) & (rng.random(n) < 0.12)
    plan_change_day = np.full(n, NEVER, dtype=np.int64)
    plan_change_day[downgrade] = onset_day[downgrade] + rng.integers(5, 45, downgrade.sum())
    plan_change_day[upgrade] = (
        first_day[upgrade] + 30 + rng.exponential(600.0, upgrade.sum()).astype(np.int64)
    )
    new_plan = np.where(downgrade, plan0 - 1, np.where(upgrade, plan0 + 1, plan0))

    pay_change = rng.random(n) < 0.10
    payment_change_day = np.where(
        pay_change, first_day + 1 + rng.exponential(700.0, n).astype(np.int64), NEVER
    )
    new_payment = (payment0 + rng.integers(1, 4, n)) % 4
    # One record a day per customer: a payment change never lands on a plan-change day.
    payment_change_day = np.where(
        payment_change_day == plan_change_day, payment_change_day + 1, payment_change_day
    )
    churn_reason = rng.choice(5, n, p=[0.28, 0.24, 0.26, 0.10, 0.12])
    return {
        "signup_day": signup_day,
        "plan0": plan0,
        "payment0": payment0,
        "channel": channel,
        "region": region,
        "is_promo": is_promo,
        "addon_eur": np.round(addon, 2),
        "engagement": engagement,
        "adoption": adoption,
        "reliability": reliability,
        "ticket_propensity": ticket_propensity,
        "frailty": frailty,
        "exposure": exposure,
        "onset_day": onset_day,
        "plan_change_day": plan_change_day,
        "new_plan": new_plan,
        "payment_change_day": payment_change_day,
        "new_payment": new_payment,
        "churn_reason": churn_reason,
    }


BASE_BURN_IN_YEARS = 15


def _base_block(settings: SimulationSettings, timeline: Timeline) -> dict[str, np.ndarray]:
    """The base on day 0: in the state the model's own dynamics lead to (a burn-in).

    Candidates sign up at a constant rate over the 15 years before the feed, live through
    the same hazards as everyone later (disengagement, churn), and the first
    ``customers`` who are still customers on day 0 are the base. So tenure, the share
    of disengaged customers and the churn rate start where they stay: a baseline feed does
    not drift by itself while the base settles.
    """
    rng = rng_for(settings, STREAM_BASE, 0)
    n = settings.customers
    survivors: list[dict[str, np.ndarray]] = []
    found = 0
    while found < n:  # about one candidate in four survives; draw 6n at a time
        m = 6 * n
        tenure = rng.integers(1, BASE_BURN_IN_YEARS * 365, m)
        block = _draw_block(rng, m, -tenure, 0)
        alive = np.flatnonzero(_churn_days(timeline, block, 0) > 0)[: n - found]
        survivors.append({k: v[alive] for k, v in block.items()})
        found += len(alive)
    return {k: np.concatenate([b[k] for b in survivors]) for k in survivors[0]}


def _arrival_block(
    settings: SimulationSettings, timeline: Timeline, day: int
) -> list[dict[str, np.ndarray]]:
    blocks = []
    rng = rng_for(settings, STREAM_ARRIVALS, day)
    # Steady state: sign-ups replace the base's churn (~8% per 90 days).
    n = int(rng.poisson(settings.customers * 0.08 / 90))
    blocks.append(_draw_block(rng, n, np.full(n, day, dtype=np.int64), 0))
    scenario, start = timeline.scenario, timeline.start_day
    for position, wave in enumerate(scenario.waves):
        if not wave.active_on(day, start):
            continue
        stream = STREAM_FIRST_WAVE if position == 0 else STREAM_LATER_WAVES + position
        rng_w = rng_for(settings, stream, day)
        rate = settings.customers * wave.daily_signup_share
        strength = scenario.strength(day - start)
        m = int(rng_w.poisson(rate if strength == 1.0 else rate * strength))
        draws = {**BASELINE_DRAWS, **wave.drivers}
        blocks.append(_draw_block(rng_w, m, np.full(m, day, dtype=np.int64), 0, draws))
    return blocks


def scenario_of(settings: SimulationSettings) -> Scenario:
    """The scenario the settings choose: the user's file if one is set, else a shipped one."""
    if settings.scenario_file is not None:
        return load_scenario(settings.scenario_file)
    return shipped_scenario(settings.scenario)


def scenario_start(settings: SimulationSettings, scenario: Scenario) -> dt.date:
    """The scenario's own start, or the configured one (``effective_scenario_start``)."""
    return scenario.start or settings.effective_scenario_start


@dataclass(frozen=True)
class Timeline:
    """A scenario placed on the feed's days: its start day, and the hazard effects of each
    stretch (index 0: the baseline, before the start; then one per ramp step)."""

    scenario: Scenario
    start_day: int

    @classmethod
    def of(cls, settings: SimulationSettings, scenario: Scenario) -> Timeline:
        return cls(scenario, day_index(settings, scenario_start(settings, scenario)))

    def hazard_step_days(self) -> list[int]:
        """First day of each stretch after the baseline; a day never reached when the
        scenario changes no hazard (the churn-day search then has nothing to split)."""
        if not self.scenario.hazard:
            return [int(NEVER)]
        return [self.start_day + offset for offset in self.scenario.ramp_step_offsets()]

    def effects(self) -> list[Effects]:
        if not self.scenario.hazard:
            return [BASELINE_EFFECTS]
        strengths = [self.scenario.strength(o) for o in self.scenario.ramp_step_offsets()]
        return [BASELINE_EFFECTS, *(effects_at(self.scenario, s) for s in strengths)]


def effects_at(scenario: Scenario, strength: float) -> Effects:
    """The hazard effects with ``strength`` (0..1) of the scenario's changes applied: each
    changed effect moves that share of the way from the baseline's to the scenario's."""
    effects = dict(BASELINE_EFFECTS)
    for change in scenario.hazard:
        base = BASELINE_EFFECTS[change.driver]
        target: float | np.ndarray
        if change.multiplier is not None:
            target = base * change.multiplier
        elif isinstance(change.effect, Mapping):
            categories = HAZARD_DRIVERS[change.driver] or ()
            target = np.array(base, dtype=np.float64)
            for category, value in change.effect.items():
                target[categories.index(category)] = value
        else:
            assert change.effect is not None
            target = change.effect
        # Full strength is the target itself, not base + 1 * (target - base): the same bits.
        effects[change.driver] = target if strength == 1.0 else base + strength * (target - base)
    return effects


def expected_bill_eur(plan: np.ndarray, addon_eur: np.ndarray) -> np.ndarray:
    return PLAN_FEES_EUR[plan] + addon_eur


def build_population(
    settings: SimulationSettings, last_day: int, scenario: Scenario | None = None
) -> Population:
    """Every customer who has signed up by ``last_day``, with churn days up to ``last_day``,
    under ``scenario`` (default: the one the settings choose, ``scenario_of``)."""
    timeline = Timeline.of(settings, scenario or scenario_of(settings))
    blocks = [_base_block(settings, timeline)]
    for day in range(0, last_day + 1):
        blocks.extend(_arrival_block(settings, timeline, day))
    cols = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    n = len(cols["signup_day"])
    churn_day = _churn_days(timeline, cols, last_day)
    i8 = np.int8
    return Population(
        customer_id=np.arange(1, n + 1, dtype=np.int64),
        signup_day=cols["signup_day"].astype(np.int32),
        plan0=cols["plan0"].astype(i8),
        payment0=cols["payment0"].astype(i8),
        channel=cols["channel"].astype(i8),
        region=cols["region"].astype(i8),
        is_promo=cols["is_promo"].astype(bool),
        addon_eur=cols["addon_eur"],
        engagement=cols["engagement"],
        adoption=cols["adoption"],
        reliability=cols["reliability"],
        ticket_propensity=cols["ticket_propensity"],
        onset_day=np.minimum(cols["onset_day"], NEVER).astype(np.int32),
        plan_change_day=np.minimum(cols["plan_change_day"], NEVER).astype(np.int32),
        new_plan=cols["new_plan"].astype(i8),
        payment_change_day=np.minimum(cols["payment_change_day"], NEVER).astype(np.int32),
        new_payment=cols["new_payment"].astype(i8),
        churn_reason=cols["churn_reason"].astype(i8),
        churn_day=churn_day,
        last_day=last_day,
    )


def log_hazard_parts(
    effects: Effects, cols: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """The log-hazard terms that do not depend on the day: static, and billing."""
    static = (
        np.asarray(effects["plan"])[cols["plan0"]]
        + np.asarray(effects["payment_method"])[cols["payment0"]]
        + np.asarray(effects["acquisition_channel"])[cols["channel"]]
        + effects["engagement"] * cols["engagement"]
        + effects["ticket_propensity"] * cols["ticket_propensity"]
        + cols["frailty"]
    )
    bill_z = (expected_bill_eur(cols["plan0"], cols["addon_eur"]) - 40.0) / 20.0
    billing = effects["bill"] * bill_z + effects["reliability"] * cols["reliability"]
    return static, billing


def _churn_days(timeline: Timeline, cols: dict[str, np.ndarray], last_day: int) -> np.ndarray:
    """Exact first day on which each customer's cumulative hazard reaches their exposure."""
    signup = cols["signup_day"].astype(np.int64)
    n = len(signup)
    start = signup + 1  # no churn on the sign-up day; the base's past counts (burn-in)
    step_days = timeline.hazard_step_days()
    effects = timeline.effects()
    parts = [log_hazard_parts(e, cols) for e in effects]
    static = np.stack([p[0] for p in parts], axis=1)
    billing = np.stack([p[1] for p in parts], axis=1)
    promo_end = np.where(cols["is_promo"], signup + PROMO_DAYS, NEVER)
    breaks = np.stack(
        [
            start,
            signup + 90,
            signup + 365,
            promo_end,
            promo_end + 90,
            cols["onset_day"] + DISENGAGED_HAZARD_DELAY_DAYS,
            *(np.full(n, day) for day in step_days),
            np.full(n, last_day + 1),
        ],
        axis=1,
    )
    breaks = np.sort(np.clip(breaks, start[:, None], last_day + 1), axis=1)
    seg_start = breaks[:, :-1]
    seg_len = np.diff(breaks, axis=1)

    tenure = seg_start - signup[:, None]
    # Which stretch of the scenario each segment is in (0: the baseline, before the start).
    step = np.zeros(seg_start.shape, dtype=np.intp)
    for day in step_days:
        step += seg_start >= day

    def per_segment(driver: str) -> np.ndarray:
        return np.array([float(e[driver]) for e in effects])[step]

    promo_end_col = promo_end[:, None]
    in_promo_end = (seg_start >= promo_end_col) & (seg_start < promo_end_col + 90)
    disengaged = seg_start >= cols["onset_day"][:, None] + DISENGAGED_HAZARD_DELAY_DAYS
    log_h = (
        np.take_along_axis(static, step, axis=1)
        + np.take_along_axis(billing, step, axis=1)
        + np.where(
            tenure < 90,
            per_segment("new_customer"),
            np.where(tenure < 365, per_segment("first_year"), 0.0),
        )
        + np.where(in_promo_end, per_segment("promo_end"), 0.0)
        + np.where(disengaged, per_segment("disengaged"), 0.0)
    )
    hazard = per_segment(BASE_RATE) * np.exp(log_h)
    hazard = np.where(disengaged, np.maximum(hazard, DISENGAGED_MIN_DAILY_HAZARD), hazard)
    seg_total = hazard * seg_len
    cum_before = np.cumsum(seg_total, axis=1) - seg_total
    exposure = cols["exposure"][:, None]
    crosses = (cum_before < exposure) & (cum_before + seg_total >= exposure) & (seg_len > 0)
    has_churn = crosses.any(axis=1)
    k = np.argmax(crosses, axis=1)
    rows = np.arange(n)
    days_into = np.ceil((exposure[:, 0] - cum_before[rows, k]) / hazard[rows, k]) - 1
    churn = seg_start[rows, k] + np.maximum(days_into, 0).astype(np.int64)
    return np.where(has_churn, churn, NEVER).astype(np.int32)


__all__ = [
    "ACQUISITION_CHANNELS",
    "NEVER",
    "PAYMENT_METHODS",
    "PLAN_TYPES",
    "Population",
    "Timeline",
    "build_population",
    "day_index",
    "day_of",
    "scenario_of",
    "scenario_start",
]
