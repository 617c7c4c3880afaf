"""The landing contract as Python objects, built from ``landing_contract.yml`` at import.

The contract itself is the YAML file beside this module (what every daily drop of every
source table must look like); this module only reads it, checks it and gives it the shape
the code uses: the simulator writes this schema, the validation gate turns it into Great
Expectations suites, and ``churnops.dbt_contract`` writes it into the dbt project. A wrong
file stops the import with one line that names the file, table, column and field.

Drops live at ``landing/<table>/dt=YYYY-MM-DD/*.parquet``; every row of the drop for day D
carries D in the table's ``event_date_column`` ("dates inside the drop's day").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    import pyarrow as pa

CONTRACT_FILE = Path(__file__).with_name("landing_contract.yml")

# The column types a contract can name, in the Arrow spelling the drops are checked against.
ARROW_TYPES = ("int64", "int32", "float64", "string", "bool", "date32", "timestamp[us]")
NUMERIC_TYPES = ("int64", "int32", "float64")
EVENT_DATE_TYPES = ("date32", "timestamp[us]")


class ContractError(ValueError):
    """The contract file is wrong; the message is one line naming the file and the place."""


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a landing table and the rules its values obey."""

    name: str
    arrow_type: str  # one of ARROW_TYPES
    description: str
    nullable: bool = False
    min_value: float | dt.date | None = None
    max_value: float | dt.date | None = None
    allowed_values: tuple[str, ...] | None = None
    unit: str | None = None

    @property
    def is_numeric(self) -> bool:
        return self.arrow_type in NUMERIC_TYPES


@dataclass(frozen=True)
class TableContract:
    """The contract of one landing table."""

    name: str
    description: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    event_date_column: str  # the column whose date must equal the drop's day
    # Day-over-day sanity: today's rows must reach this share of the recent daily median.
    min_row_ratio_vs_recent: float | None = None
    # Rows must not exceed this share of the customers active the day before.
    max_share_of_active_customers: float | None = None
    required_every_day: bool = True
    # A drop with fewer rows is a broken feed (0: an empty drop is a quiet day).
    min_rows_per_drop: int = 0
    column_names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "column_names", tuple(c.name for c in self.columns))
        unknown = set(self.primary_key) - set(self.column_names)
        if unknown or self.event_date_column not in self.column_names:
            raise ValueError(f"contract {self.name}: key/date columns not in the table: {unknown}")

    def column(self, name: str) -> ColumnSpec:
        for spec in self.columns:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.name} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema(
            [pa.field(c.name, arrow_type(c.arrow_type), nullable=c.nullable) for c in self.columns]
        )


@dataclass(frozen=True)
class DayOverDayRules:
    """How a drop is compared with the days already loaded."""

    recent_days: int  # the median of this many most recent loaded days is the reference
    min_recent_days: int  # fewer loaded days than this: the comparison is skipped
    active_customers_table: str  # its rows on a day = the customers active that day


@dataclass(frozen=True)
class SourceFreshness:
    """How late the newest drop may be before dbt's source freshness warns or fails."""

    warn_after_hours: int
    error_after_hours: int


@dataclass(frozen=True)
class LandingContract:
    """The whole contract file: tables, shared value sets and the rules across tables."""

    path: Path
    tables: dict[str, TableContract]
    value_sets: dict[str, tuple[str, ...]]
    day_over_day: DayOverDayRules
    freshness: SourceFreshness

    def table(self, name: str) -> TableContract:
        """A table the pipeline's code is written for: its absence is a contract error."""
        if name not in self.tables:
            raise ContractError(f"{self.path}: table {name!r} is missing; the pipeline needs it")
        return self.tables[name]

    def value_set(self, name: str) -> tuple[str, ...]:
        if name not in self.value_sets:
            raise ContractError(
                f"{self.path}: value_sets: {name!r} is missing; the pipeline needs it"
            )
        return self.value_sets[name]


def arrow_type(name: str) -> pa.DataType:
    """The pyarrow type for a contract type name."""
    import pyarrow as pa

    types = {
        "int64": pa.int64(),
        "int32": pa.int32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "bool": pa.bool_(),
        "date32": pa.date32(),
        "timestamp[us]": pa.timestamp("us"),
    }
    return types[name]


# --- reading the file ----------------------------------------------------------------------


# libyaml's parser when PyYAML was built with it: the file loads in a few ms instead of ~70,
# and every DAG file that imports the contract pays for it at parse time.
if TYPE_CHECKING:
    _SafeLoader = yaml.SafeLoader
else:
    _SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _StrictLoader(_SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error
    (PyYAML keeps the last one silently: a duplicated ``max:`` would hide a rule)."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise ContractError(f"line {line}: field {key!r} is written twice")
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """One mapping of the file, read field by field; a problem names where it is."""

    def __init__(self, raw: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...]):
        self.where = where
        if not isinstance(raw, dict):
            raise ContractError(f"{where}: expected a mapping of fields, got {_show(raw)}")
        unknown = [k for k in raw if k not in required and k not in optional]
        if unknown:
            known = ", ".join(required + optional)
            raise ContractError(f"{where}: unknown field {unknown[0]!r} (known: {known})")
        missing = [k for k in required if k not in raw]
        if missing:
            raise ContractError(f"{where}: field {missing[0]!r} is missing")
        self.raw = raw

    def error(self, key: str, problem: str) -> ContractError:
        return ContractError(f"{self.where}: field {key!r}: {problem}")

    def has(self, key: str) -> bool:
        return self.raw.get(key) is not None

    def text(self, key: str) -> str:
        value = self.raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected text, got {_show(value)}")
        return value.strip()

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {_show(value)}")
        return value

    def count(self, key: str, default: int, minimum: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(
                key, f"expected a whole number of at least {minimum}, got {_show(value)}"
            )
        return value

    def share(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise self.error(key, f"expected a share in (0, 1], got {_show(value)}")
        return float(value)

    def names(self, key: str) -> tuple[str, ...]:
        value = self.raw.get(key)
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise self.error(key, f"expected a non-empty list of names, got {_show(value)}")
        if len(set(value)) != len(value):
            raise self.error(key, f"a name is listed twice in {_show(value)}")
        return tuple(value)

    def mappings(self, key: str) -> list[Any]:
        value = self.raw.get(key)
        if not isinstance(value, list) or not value:
            raise self.error(key, f"expected a non-empty list, got {_show(value)}")
        return value


def _bound(fields: _Fields, key: str, arrow: str) -> float | dt.date | None:
    value = fields.raw.get(key)
    if value is None:
        return None
    if arrow in NUMERIC_TYPES:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fields.error(
                key, f"expected a number (the column is {arrow}), got {_show(value)}"
            )
        return value
    if arrow == "date32":
        if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
            raise fields.error(key, f"expected a date (YYYY-MM-DD), got {_show(value)}")
        return value
    raise fields.error(key, f"a {arrow} column has no range (only numbers and date32)")


def _column(raw: Any, where: str, value_sets: dict[str, tuple[str, ...]]) -> ColumnSpec:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"{where}, column {name}" if isinstance(name, str) else f"{where}, a column"
    fields = _Fields(
        raw,
        where,
        required=("name", "type", "description"),
        optional=("nullable", "min", "max", "unit", "allowed_values"),
    )
    arrow = fields.raw["type"]
    if arrow not in ARROW_TYPES:
        raise fields.error("type", f"{_show(arrow)} is not one of {', '.join(ARROW_TYPES)}")
    low, high = _bound(fields, "min", arrow), _bound(fields, "max", arrow)
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise fields.error("max", f"{high} is below min {low}")
    allowed: tuple[str, ...] | None = None
    if fields.has("allowed_values"):
        if arrow != "string":
            raise fields.error("allowed_values", f"only string columns have them, not {arrow}")
        value = fields.raw["allowed_values"]
        if isinstance(value, str):
            if value not in value_sets:
                known = ", ".join(value_sets) or "none"
                raise fields.error("allowed_values", f"no value set {value!r} (known: {known})")
            allowed = value_sets[value]
        else:
            allowed = fields.names("allowed_values")
    return ColumnSpec(
        name=fields.text("name"),
        arrow_type=arrow,
        description=fields.text("description"),
        nullable=fields.boolean("nullable", False),
        min_value=low,
        max_value=high,
        allowed_values=allowed,
        unit=fields.text("unit") if fields.has("unit") else None,
    )


def _table(raw: Any, where: str, value_sets: dict[str, tuple[str, ...]]) -> TableContract:
    name = raw.get("name") if isinstance(raw, dict) else None
    where = f"{where}: table {name}" if isinstance(name, str) else f"{where}: a table"
    fields = _Fields(
        raw,
        where,
        required=("name", "description", "primary_key", "event_date_column", "columns"),
        optional=("required_every_day", "min_rows_per_drop", "day_over_day"),
    )
    columns = tuple(_column(c, where, value_sets) for c in fields.mappings("columns"))
    by_name = {c.name: c for c in columns}
    if len(by_name) != len(columns):
        twice = next(c.name for c in columns if [d.name for d in columns].count(c.name) > 1)
        raise fields.error("columns", f"column {twice!r} is listed twice")
    key = fields.names("primary_key")
    for column in key:
        if column not in by_name:
            raise fields.error("primary_key", f"{column!r} is not a column of the table")
    event = fields.text("event_date_column")
    if event not in by_name:
        raise fields.error("event_date_column", f"{event!r} is not a column of the table")
    if by_name[event].arrow_type not in EVENT_DATE_TYPES:
        raise fields.error(
            "event_date_column", f"{event!r} is {by_name[event].arrow_type}, not a date or time"
        )
    rules = _Fields(
        fields.raw.get("day_over_day") or {},
        f"{where}, day_over_day",
        required=(),
        optional=("min_row_ratio_vs_recent", "max_share_of_active_customers"),
    )
    return TableContract(
        name=fields.text("name"),
        description=" ".join(fields.text("description").split()),
        columns=columns,
        primary_key=key,
        event_date_column=event,
        min_row_ratio_vs_recent=rules.share("min_row_ratio_vs_recent"),
        max_share_of_active_customers=rules.share("max_share_of_active_customers"),
        required_every_day=fields.boolean("required_every_day", True),
        min_rows_per_drop=fields.count("min_rows_per_drop", 0, minimum=0),
    )


def load_contract(path: Path = CONTRACT_FILE) -> LandingContract:
    """Read and check a landing contract file (raises :class:`ContractError`, one line)."""
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_StrictLoader)  # noqa: S506
    except OSError as error:
        raise ContractError(f"{path}: cannot be read: {error.strerror}") from None
    except ContractError as error:
        raise ContractError(f"{path}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ContractError(f"{path}: not valid YAML{at}: {problem}") from None

    top = _Fields(
        raw,
        str(path),
        required=("version", "value_sets", "freshness", "day_over_day", "tables"),
        optional=(),
    )
    if top.raw["version"] != 1:
        raise top.error(
            "version", f"this churnops reads version 1, not {_show(top.raw['version'])}"
        )
    raw_sets = top.raw["value_sets"]
    names = tuple(raw_sets) if isinstance(raw_sets, dict) else ()
    sets = _Fields(raw_sets, f"{path}: value_sets", required=(), optional=names)
    value_sets = {name: sets.names(name) for name in names}

    tables: dict[str, TableContract] = {}
    for raw_table in top.mappings("tables"):
        table = _table(raw_table, str(path), value_sets)
        if table.name in tables:
            raise top.error("tables", f"table {table.name!r} is listed twice")
        tables[table.name] = table

    rules = _Fields(
        top.raw["day_over_day"],
        f"{path}: day_over_day",
        required=("recent_days", "min_recent_days", "active_customers_table"),
        optional=(),
    )
    recent = rules.count("recent_days", 0, minimum=1)
    active = rules.text("active_customers_table")
    if active not in tables:
        raise rules.error("active_customers_table", f"{active!r} is not a table of the contract")
    day_over_day = DayOverDayRules(
        recent_days=recent,
        min_recent_days=rules.count("min_recent_days", 0, minimum=1),
        active_customers_table=active,
    )
    if day_over_day.min_recent_days > recent:
        raise rules.error("min_recent_days", f"more than recent_days ({recent})")

    late = _Fields(
        top.raw["freshness"],
        f"{path}: freshness",
        required=("warn_after_hours", "error_after_hours"),
        optional=(),
    )
    freshness = SourceFreshness(
        warn_after_hours=late.count("warn_after_hours", 0, minimum=1),
        error_after_hours=late.count("error_after_hours", 0, minimum=1),
    )
    if freshness.error_after_hours < freshness.warn_after_hours:
        raise late.error("error_after_hours", "below warn_after_hours")
    return LandingContract(path, tables, value_sets, day_over_day, freshness)


LANDING = load_contract()

# The names the rest of the code imports: the simulator draws from these value sets and the
# model's categorical features are built on them.
PLAN_TYPES = LANDING.value_set("plan_types")
PAYMENT_METHODS = LANDING.value_set("payment_methods")
ACQUISITION_CHANNELS = LANDING.value_set("acquisition_channels")
REGIONS = LANDING.value_set("regions")
CUSTOMER_CHANGE_TYPES = LANDING.value_set("customer_change_types")
TICKET_CATEGORIES = LANDING.value_set("ticket_categories")
TICKET_PRIORITIES = LANDING.value_set("ticket_priorities")
TICKET_CHANNELS = LANDING.value_set("ticket_channels")
CHURN_REASONS = LANDING.value_set("churn_reasons")
CURRENCIES = LANDING.value_set("currencies")

CUSTOMERS = LANDING.table("customers")
USAGE_DAILY = LANDING.table("usage_daily")
INVOICES = LANDING.table("invoices")
PAYMENTS = LANDING.table("payments")
SUPPORT_TICKETS = LANDING.table("support_tickets")
CHURN_EVENTS = LANDING.table("churn_events")

# Oldest sign-up the business has: anything earlier is a broken export, not history.
EARLIEST_SIGNUP = CUSTOMERS.column("signup_date").min_value

DAY_OVER_DAY = LANDING.day_over_day
LANDING_TABLES: dict[str, TableContract] = LANDING.tables


def contract_for(table: str) -> TableContract:
    """The contract of a landing table, with a readable error for unknown names."""
    try:
        return LANDING_TABLES[table]
    except KeyError:
        raise KeyError(
            f"unknown landing table {table!r}; known: {sorted(LANDING_TABLES)}"
        ) from None
