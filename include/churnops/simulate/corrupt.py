"""Bad drops on demand, so the validation gate can be shown to catch each kind.

A corruption names a day, a kind and (optionally) a table; it changes what the simulator
writes for that table on that day and nothing else. Each kind returns a sentence saying
exactly what it did, which the tests compare with what the gate reports.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churnops.contracts import TableContract, contract_for

# kind -> what it breaks. Every kind defaults to usage_daily, the biggest and most
# important drop; any landing table can be named instead.
CORRUPTION_KINDS: dict[str, str] = {
    "missing_column": "a contract column is absent",
    "extra_column": "a column the contract does not know appears",
    "wrong_type": "a numeric column arrives as text",
    "null_keys": "key values are null",
    "duplicate_keys": "rows repeat their key",
    "out_of_range": "values fall outside the contract's range",
    "dates_outside_day": "rows are dated outside the drop's day",
    "empty_file": "the file has the schema but no rows",
    "truncated_file": "the file is cut short and cannot be read",
    "missing_drop": "the table's drop for the day is not there at all",
}
DEFAULT_TABLE = "usage_daily"
EXTRA_COLUMN = "unexpected_column"


class CorruptionError(ValueError):
    """A corruption that cannot be applied as asked."""


@dataclass(frozen=True)
class Corruption:
    day: dt.date
    kind: str
    table: str = DEFAULT_TABLE

    def __post_init__(self) -> None:
        if self.kind not in CORRUPTION_KINDS:
            raise CorruptionError(
                f"unknown corruption kind {self.kind!r}; known: {', '.join(CORRUPTION_KINDS)}"
            )
        contract_for(self.table)

    @classmethod
    def parse(cls, spec: str) -> Corruption:
        """Parse ``DATE:KIND`` or ``DATE:KIND:TABLE``."""
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise CorruptionError(f"--corrupt {spec!r}: expected DATE:KIND or DATE:KIND:TABLE")
        try:
            day = dt.date.fromisoformat(parts[0])
        except ValueError:
            raise CorruptionError(f"--corrupt {spec!r}: {parts[0]!r} is not a date") from None
        return cls(day, parts[1], parts[2] if len(parts) == 3 else DEFAULT_TABLE)


def _affected_rows(n: int, rng: np.random.Generator) -> np.ndarray:
    """About 1% of the rows, at least one, in a fixed random order."""
    k = max(1, n // 100)
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def _first_value_column(contract: TableContract) -> str:
    """The first numeric column that is neither a key nor the event date."""
    for col in contract.columns:
        if col.is_numeric and col.name not in contract.primary_key:
            return col.name
    return contract.primary_key[0]


def _set_rows(table: pa.Table, column: str, rows: np.ndarray, value: object) -> pa.Table:
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[rows] = True
    col = table.column(column)
    replaced = pc.if_else(pa.array(mask), pa.scalar(value, col.type), col)
    index = table.schema.get_field_index(column)
    field = table.schema.field(index).with_nullable(
        value is None or table.schema.field(index).nullable
    )
    return table.set_column(index, field, replaced)


def corrupt_table(
    table: pa.Table, corruption: Corruption, rng: np.random.Generator
) -> tuple[pa.Table, str]:
    """Apply a content corruption to a day's table; return it and what was done."""
    contract = contract_for(corruption.table)
    kind = corruption.kind
    where = f"{corruption.table} dt={corruption.day.isoformat()}"
    if kind == "empty_file":
        return table.slice(0, 0), f"{where}: empty_file: wrote 0 of {table.num_rows} rows"
    if kind == "extra_column":
        extra = pa.array(np.zeros(table.num_rows, dtype=np.int64))
        return table.append_column(EXTRA_COLUMN, extra), f"{where}: extra_column {EXTRA_COLUMN}"
    if kind == "missing_column":
        column = _first_value_column(contract)
        return table.drop_columns([column]), f"{where}: missing_column {column}"
    if kind == "wrong_type":
        column = _first_value_column(contract)
        index = table.schema.get_field_index(column)
        as_text = pc.cast(table.column(column), pa.string())
        return (
            table.set_column(index, pa.field(column, pa.string()), as_text),
            f"{where}: wrong_type {column} written as string",
        )
    if table.num_rows == 0:
        raise CorruptionError(f"{where} has no rows, so {kind} cannot be applied; pick another day")
    rows = _affected_rows(table.num_rows, rng)
    if kind == "null_keys":
        column = contract.primary_key[0]
        return _set_rows(
            table, column, rows, None
        ), f"{where}: null_keys {column} on {len(rows)} rows"
    if kind == "duplicate_keys":
        dupes = table.take(pa.array(rows))
        return (
            pa.concat_tables([table, dupes]),
            f"{where}: duplicate_keys {','.join(contract.primary_key)} on {len(rows)} rows",
        )
    if kind == "out_of_range":
        column = _first_value_column(contract)
        spec = contract.column(column)
        bad = (spec.max_value * 10 + 1) if isinstance(spec.max_value, int | float) else -1
        if spec.arrow_type.startswith("int"):
            bad = int(bad)
        return (
            _set_rows(table, column, rows, bad),
            f"{where}: out_of_range {column}={bad} on {len(rows)} rows",
        )
    if kind == "dates_outside_day":
        column = contract.event_date_column
        col_type = table.schema.field(column).type
        shifted = pc.subtract(table.column(column), pa.scalar(dt.timedelta(days=3)))
        mask = np.zeros(table.num_rows, dtype=bool)
        mask[rows] = True
        replaced = pc.if_else(pa.array(mask), pc.cast(shifted, col_type), table.column(column))
        index = table.schema.get_field_index(column)
        return (
            table.set_column(index, table.schema.field(index), replaced),
            f"{where}: dates_outside_day {column} 3 days early on {len(rows)} rows",
        )
    raise CorruptionError(f"{kind} is not a content corruption")  # file kinds handled on write


def truncate_file(path: Path) -> str:
    """Cut a written Parquet file to 40% of its bytes: the footer is gone, so it cannot be read."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.4)])
    return f"truncated_file {path.name} to {int(len(data) * 0.4)} of {len(data)} bytes"
