"""``gate``: how long the validation gate takes on a big drop (``CHURNOPS_BENCH_CUSTOMERS``
rows of usage_daily).

Writes a valid drop (and a copy with 1% of one column out of range) to a temporary landing
folder and times ``validate_drop`` on each; importing GX is timed apart.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

from bench.harness import BENCH_CUSTOMERS, measure


def run(rows: int, table: str = "usage_daily") -> dict[str, float]:
    """Seconds of each step on a ``rows``-row drop of ``table``: importing GX, then
    ``validate_drop`` on the valid drop and on the broken copy (read, GX, total), and the
    broken drop's report with its Data Docs. Raises if either verdict is wrong."""
    import pyarrow as pa

    from churnops.contracts import contract_for
    from churnops.validate.day_over_day import DropHistory
    from churnops.validate.gate import _import_gx, validate_drop
    from tests.landing_drops import valid_table, write_drop

    timings: dict[str, float] = {}
    began = time.perf_counter()
    _import_gx()
    timings["import_great_expectations_s"] = time.perf_counter() - began

    day = dt.date(2025, 3, 4)
    contract = contract_for(table)
    data = valid_table(contract, day, rows)
    history = DropHistory([rows] * 7, rows)
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = Path(tmp) / "good", Path(tmp) / "bad"
        write_drop(good, table, day, data)
        column = next(c.name for c in contract.columns if c.max_value is not None)
        values = data.column(column).to_numpy().copy()
        values[::100] = contract.column(column).max_value * 10 + 1  # type: ignore[operator]
        index = data.schema.get_field_index(column)
        column_type = data.column(column).type
        broken = data.set_column(index, data.schema.field(index), pa.array(values, column_type))
        write_drop(bad, table, day, broken)

        for label, root in (("valid", good), ("one_column_1pct_bad", bad)):
            began = time.perf_counter()
            report = validate_drop(contract, day, root, history)
            timings[f"{label}_total_s"] = time.perf_counter() - began
            timings[f"{label}_gx_s"] = report.seconds.get("great_expectations", float("nan"))
            timings[f"{label}_read_s"] = report.seconds.get("read", float("nan"))
            if label == "valid" and not report.passed:
                raise AssertionError(report.message())
            if label != "valid" and report.passed:
                raise AssertionError("the broken drop passed")
            if label != "valid":
                began = time.perf_counter()
                report.write_report(Path(tmp) / "quarantine")
                timings["report_and_data_docs_s"] = time.perf_counter() - began
    return timings


def bench_gate(tmp: Path) -> list[tuple[str, dict]]:
    figures = measure(run, BENCH_CUSTOMERS)
    # The two verdicts, not the child's whole life (the GX import and the drops written).
    figures["seconds"] = figures["valid_total_s"] + figures["one_column_1pct_bad_total_s"]
    return [
        (
            f"validate_drop, usage_daily, {BENCH_CUSTOMERS:,} rows: valid + 1% of a column bad",
            figures,
        )
    ]
