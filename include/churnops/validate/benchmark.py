"""How long the gate takes on a big drop: ``python -m churnops.validate.benchmark --rows 500000``.

Writes a valid drop (and a copy with 1% of one column out of range) to a temporary landing
folder and times ``validate_drop`` on each; the first call also pays for importing GX.
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path


def run(rows: int, table: str = "usage_daily") -> dict[str, float]:
    import pyarrow as pa

    from churnops.contracts import contract_for
    from churnops.validate.day_over_day import DropHistory
    from churnops.validate.examples import valid_table, write_drop
    from churnops.validate.gate import _import_gx, validate_drop

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--table", default="usage_daily")
    args = parser.parse_args(argv)
    for name, seconds in run(args.rows, args.table).items():
        print(f"{name:<32} {seconds:6.2f}")


if __name__ == "__main__":
    main()
