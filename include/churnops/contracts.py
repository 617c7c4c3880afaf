"""The landing contract: what every daily drop of every source table must look like.

This is the single written agreement between the source system (the simulator here, a
real export in production) and the pipeline. The simulator writes exactly this schema,
the validation gate turns it into Great Expectations suites, and dbt's sources document
the same columns. Change a table here and both sides follow.

Drops live at ``landing/<table>/dt=YYYY-MM-DD/*.parquet``; every row of the drop for day
D carries D in the table's ``event_date_column`` ("dates inside the drop's day").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

PLAN_TYPES = ("basic", "standard", "premium")
PAYMENT_METHODS = ("card", "direct_debit", "paypal", "invoice")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "referral", "partner", "campaign")
REGIONS = ("north", "south", "east", "west", "central")
CUSTOMER_CHANGE_TYPES = ("snapshot", "signup", "plan_change", "payment_change")
TICKET_CATEGORIES = ("billing", "technical", "account", "cancellation")
TICKET_PRIORITIES = ("low", "medium", "high")
TICKET_CHANNELS = ("phone", "email", "chat")
CHURN_REASONS = ("price", "service", "competitor", "moved", "other")
CURRENCIES = ("EUR",)

# Oldest sign-up the business has: anything earlier is a broken export, not history.
EARLIEST_SIGNUP = dt.date(2000, 1, 1)


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a landing table and the rules its values obey."""

    name: str
    arrow_type: str  # int64 | int32 | float64 | string | bool | date32 | timestamp[us]
    description: str
    nullable: bool = False
    min_value: float | dt.date | None = None
    max_value: float | dt.date | None = None
    allowed_values: tuple[str, ...] | None = None
    unit: str | None = None

    @property
    def is_numeric(self) -> bool:
        return self.arrow_type in {"int64", "int32", "float64"}


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


def _customer_id(description: str = "Customer identifier, stable for life.") -> ColumnSpec:
    return ColumnSpec("customer_id", "int64", description, min_value=1)


CUSTOMERS = TableContract(
    name="customers",
    description=(
        "Customer records: the whole base on the first day of a feed (change_type=snapshot), "
        "then one row per sign-up, plan change or payment-method change, each carrying the "
        "customer's full record as of effective_date."
    ),
    columns=(
        _customer_id(),
        ColumnSpec("effective_date", "date32", "Day the record became true (the drop's day)."),
        ColumnSpec(
            "change_type",
            "string",
            "Why the record was sent.",
            allowed_values=CUSTOMER_CHANGE_TYPES,
        ),
        ColumnSpec(
            "signup_date",
            "date32",
            "Day the customer signed up.",
            min_value=EARLIEST_SIGNUP,
        ),
        ColumnSpec("plan_type", "string", "Subscription plan.", allowed_values=PLAN_TYPES),
        ColumnSpec(
            "payment_method", "string", "How the customer pays.", allowed_values=PAYMENT_METHODS
        ),
        ColumnSpec(
            "acquisition_channel",
            "string",
            "Marketing channel that brought the customer.",
            allowed_values=ACQUISITION_CHANNELS,
        ),
        ColumnSpec("region", "string", "Sales region.", allowed_values=REGIONS),
        ColumnSpec(
            "monthly_fee",
            "float64",
            "List price of the plan per month.",
            min_value=0.0,
            max_value=500.0,
            unit="EUR",
        ),
        ColumnSpec("is_promo", "bool", "Signed up on an introductory discount."),
    ),
    primary_key=("customer_id",),
    event_date_column="effective_date",
    # Only the first day carries the full base; later days are small change sets.
    required_every_day=True,
)

USAGE_DAILY = TableContract(
    name="usage_daily",
    description="One row per active customer per day with that day's product usage.",
    columns=(
        _customer_id(),
        ColumnSpec("usage_date", "date32", "Day of usage (the drop's day)."),
        ColumnSpec("calls", "int32", "Calls made.", min_value=0, max_value=500, unit="calls"),
        ColumnSpec(
            "data_gb", "float64", "Mobile data used.", min_value=0, max_value=200, unit="GB"
        ),
        ColumnSpec("logins", "int32", "App or web logins.", min_value=0, max_value=200),
        ColumnSpec(
            "session_minutes",
            "float64",
            "Minutes spent in the app.",
            min_value=0,
            max_value=1440,
            unit="minutes",
        ),
        ColumnSpec(
            "features_used",
            "int32",
            "Distinct product features used that day (of 12).",
            min_value=0,
            max_value=12,
        ),
    ),
    primary_key=("customer_id", "usage_date"),
    event_date_column="usage_date",
    min_row_ratio_vs_recent=0.5,
)

INVOICES = TableContract(
    name="invoices",
    description="Monthly invoices, issued on each customer's billing day (every 30 days of tenure).",
    columns=(
        ColumnSpec("invoice_id", "string", "Invoice identifier."),
        _customer_id("Customer billed."),
        ColumnSpec("invoice_date", "date32", "Day the invoice was issued (the drop's day)."),
        ColumnSpec("due_date", "date32", "Day payment is due."),
        ColumnSpec("plan_type", "string", "Plan billed.", allowed_values=PLAN_TYPES),
        ColumnSpec(
            "list_amount",
            "float64",
            "Plan fee plus add-ons before discounts.",
            min_value=0,
            max_value=1000,
            unit="EUR",
        ),
        ColumnSpec(
            "discount_amount",
            "float64",
            "Discount granted.",
            min_value=0,
            max_value=1000,
            unit="EUR",
        ),
        ColumnSpec(
            "amount_due", "float64", "Amount to pay.", min_value=0, max_value=1000, unit="EUR"
        ),
        ColumnSpec("currency", "string", "ISO currency code.", allowed_values=CURRENCIES),
    ),
    primary_key=("invoice_id",),
    event_date_column="invoice_date",
)

PAYMENTS = TableContract(
    name="payments",
    description="Payments received against invoices; late when paid_date is after the due date.",
    columns=(
        ColumnSpec("payment_id", "string", "Payment identifier."),
        ColumnSpec("invoice_id", "string", "Invoice paid."),
        _customer_id("Customer who paid."),
        ColumnSpec("paid_date", "date32", "Day the payment arrived (the drop's day)."),
        ColumnSpec(
            "amount_paid", "float64", "Amount received.", min_value=0, max_value=1000, unit="EUR"
        ),
    ),
    primary_key=("payment_id",),
    event_date_column="paid_date",
)

SUPPORT_TICKETS = TableContract(
    name="support_tickets",
    description="Support tickets opened by customers.",
    columns=(
        ColumnSpec("ticket_id", "string", "Ticket identifier."),
        _customer_id("Customer who opened the ticket."),
        ColumnSpec("created_at", "timestamp[us]", "When the ticket was opened (UTC)."),
        ColumnSpec("category", "string", "Ticket topic.", allowed_values=TICKET_CATEGORIES),
        ColumnSpec("priority", "string", "Triage priority.", allowed_values=TICKET_PRIORITIES),
        ColumnSpec("channel", "string", "Contact channel.", allowed_values=TICKET_CHANNELS),
    ),
    primary_key=("ticket_id",),
    event_date_column="created_at",
)

CHURN_EVENTS = TableContract(
    name="churn_events",
    description="Customers who cancelled; churn_date is their last day as a customer.",
    columns=(
        _customer_id("Customer who churned."),
        ColumnSpec("churn_date", "date32", "Day the cancellation took effect (the drop's day)."),
        ColumnSpec("reason", "string", "Reason given.", allowed_values=CHURN_REASONS),
    ),
    primary_key=("customer_id",),
    event_date_column="churn_date",
    # A night on which more than 2% of the base churns is a broken feed, not a bad night.
    max_share_of_active_customers=0.02,
)

LANDING_TABLES: dict[str, TableContract] = {
    t.name: t for t in (CUSTOMERS, USAGE_DAILY, INVOICES, PAYMENTS, SUPPORT_TICKETS, CHURN_EVENTS)
}


def contract_for(table: str) -> TableContract:
    """The contract of a landing table, with a readable error for unknown names."""
    try:
        return LANDING_TABLES[table]
    except KeyError:
        raise KeyError(
            f"unknown landing table {table!r}; known: {sorted(LANDING_TABLES)}"
        ) from None
