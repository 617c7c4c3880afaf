"""Ingest: landing drops validated, then loaded into the raw layer or quarantined.

Importing this package is cheap; pyarrow, duckdb and great_expectations load on first use.
"""

from churnops.ingest.bulk import RangeIngestResult, TableRangeResult, ingest_range
from churnops.ingest.loader import (
    DayIngestResult,
    DropRejected,
    IngestResult,
    drop_history,
    ingest_day,
    ingest_drop,
)

__all__ = [
    "DayIngestResult",
    "DropRejected",
    "IngestResult",
    "RangeIngestResult",
    "TableRangeResult",
    "drop_history",
    "ingest_day",
    "ingest_drop",
    "ingest_range",
]
