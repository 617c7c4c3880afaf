"""Ingest: landing drops validated, then loaded into the raw layer or quarantined.

Importing this package is cheap; pyarrow, duckdb and great_expectations load on first use.
"""

from churnops.ingest.bulk import ingest_range
from churnops.ingest.loader import drop_history, ingest_day, ingest_drop
from churnops.ingest.results import (
    DayIngestResult,
    DropRejected,
    IngestResult,
    RangeIngestResult,
    TableRangeResult,
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
