"""Landing drops for tests: rows that satisfy a landing contract, made from the contract
alone, and written where the loader reads them.

For tests of the gate and the loader, and for the gate's benchmark (``bench/gate.py``): no
simulator needed, and any contract change is followed automatically.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from churnops.contracts import ColumnSpec, TableContract, arrow_type, contract_for
from churnops.landing import drop_dir

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from churnops.storage import Location


def _number(bound: float | dt.date | None, default: float) -> float:
    return float(bound) if isinstance(bound, int | float) else default


def _column(
    spec: ColumnSpec, contract: TableContract, day: dt.date, rows: int, rng: np.random.Generator
) -> list | np.ndarray:
    import numpy as np

    is_key = spec.name in contract.primary_key
    if spec.name == contract.event_date_column:
        if spec.arrow_type == "timestamp[us]":
            start = dt.datetime(day.year, day.month, day.day)
            seconds = rng.integers(0, 86_400, rows)
            return [start + dt.timedelta(seconds=int(s)) for s in seconds]
        return [day] * rows
    if spec.allowed_values is not None:
        return rng.choice(np.array(spec.allowed_values, dtype=object), rows).tolist()
    if spec.arrow_type == "string":
        prefix = spec.name.removesuffix("_id")
        return [f"{prefix}-{day:%Y%m%d}-{i:07d}" for i in range(rows)]
    if spec.arrow_type in ("int64", "int32"):
        first = int(_number(spec.min_value, 0))
        if is_key:
            return np.arange(first, first + rows, dtype=np.int64)
        last = int(_number(spec.max_value, first + 1_000))
        return rng.integers(first, last + 1, rows)
    if spec.arrow_type == "float64":
        low = _number(spec.min_value, 0.0)
        high = _number(spec.max_value, low + 100.0)
        return np.round(rng.uniform(low, high, rows), 2)
    if spec.arrow_type == "bool":
        return rng.random(rows) < 0.5
    if spec.arrow_type == "date32":
        earliest = spec.min_value if isinstance(spec.min_value, dt.date) else day
        span = max((day - earliest).days, 0)
        back = rng.integers(0, span + 1, rows) if span else np.zeros(rows, dtype=np.int64)
        return [day - dt.timedelta(days=int(b)) for b in back]
    if spec.arrow_type == "timestamp[us]":
        return [dt.datetime(day.year, day.month, day.day)] * rows
    raise ValueError(f"no example values for type {spec.arrow_type}")


def valid_table(
    table: str | TableContract, day: dt.date, rows: int = 100, seed: int = 0
) -> pa.Table:
    """``rows`` rows for the drop of ``day`` that satisfy every rule of the contract."""
    import numpy as np
    import pyarrow as pa

    contract = table if isinstance(table, TableContract) else contract_for(table)
    rng = np.random.default_rng(seed)
    arrays = [
        pa.array(_column(spec, contract, day, rows, rng), arrow_type(spec.arrow_type))
        for spec in contract.columns
    ]
    return pa.Table.from_arrays(arrays, schema=contract.arrow_schema())


def write_drop(
    landing_dir: Location,
    table: str,
    day: dt.date,
    data: pa.Table,
    file_name: str = "part-0.parquet",
) -> Location:
    """Write ``data`` as a file of the drop ``landing_dir/<table>/dt=<day>/`` (local or
    on the shared files' object store)."""
    from churnops.storage import write_parquet

    path = drop_dir(landing_dir, table, day) / file_name
    write_parquet(data, path)
    return path
