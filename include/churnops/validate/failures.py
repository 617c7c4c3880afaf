"""One broken rule of one drop, told in a sentence that names file, column, rule and count."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass
from typing import Any

_MAX_SAMPLE_CHARS = 40


@dataclass(frozen=True)
class Failure:
    """A rule a drop breaks.

    ``rule`` is the GX expectation type (``expect_column_values_to_be_between``) or the name
    of a check outside GX (``readable_parquet``, ``row_count_vs_recent_median``...).
    ``file`` is the Parquet file (comma-separated when the rule concerns several, None for
    the drop as a whole), ``unexpected_count`` the rows that break the rule out of
    ``row_count`` rows looked at, ``samples`` a few offending values, ``params`` the rule's
    parameters as shown in parentheses and ``detail`` what was found.
    """

    rule: str
    file: str | None = None
    column: str | None = None
    unexpected_count: int | None = None
    row_count: int | None = None
    samples: tuple[str, ...] = ()
    params: str = ""
    detail: str = ""

    def sentence(self) -> str:
        head = []
        if self.file:
            head.append(self.file)
        if self.column:
            names = [c.strip() for c in self.column.split(",")]
            if len(names) == 1:
                head.append(f"column '{names[0]}'")
            else:
                head.append("columns " + ", ".join(f"'{n}'" for n in names))
        head.append(f"{self.rule}({self.params})" if self.params else self.rule)
        tail = []
        if self.detail:
            tail.append(self.detail)
        if self.unexpected_count is not None:
            if self.row_count is not None and self.unexpected_count == self.row_count:
                tail.append(f"all {self.row_count:,} rows")
            elif self.row_count is not None:
                tail.append(f"{self.unexpected_count:,} of {self.row_count:,} rows fail")
            else:
                tail.append(f"{self.unexpected_count:,} rows fail")
        text = " ".join(head)
        if tail:
            text += ": " + "; ".join(tail)
        if self.samples:
            text += f" (e.g. {', '.join(self.samples)})"
        return text

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["samples"] = list(self.samples)
        data["message"] = self.sentence()
        return data


def format_value(value: Any) -> str:
    """A sample value as a short, readable string (dates without a midnight time)."""
    if value is None:
        return "null"
    import numpy as np
    import pandas as pd

    if value is pd.NA or value is pd.NaT:
        return "null"
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, float) and math.isnan(value):
        return "null"
    if isinstance(value, dt.datetime) and value.time() == dt.time(0):
        return value.date().isoformat()
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return "(" + ", ".join(format_value(v) for v in value.values()) + ")"
    if isinstance(value, tuple | list):
        return "(" + ", ".join(format_value(v) for v in value) + ")"
    if isinstance(value, str):
        text = repr(value)
    else:
        text = str(value.item() if hasattr(value, "item") else value)
    return text if len(text) <= _MAX_SAMPLE_CHARS else text[: _MAX_SAMPLE_CHARS - 3] + "..."


def distinct_samples(values: list[Any], limit: int = 3) -> tuple[str, ...]:
    """Up to ``limit`` distinct formatted values, in order of appearance."""
    seen: list[str] = []
    for v in values:
        text = format_value(v)
        if text not in seen:
            seen.append(text)
        if len(seen) >= limit:
            break
    return tuple(seen)
