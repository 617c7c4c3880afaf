"""The validation gate: landing drops checked against the landing contract before loading.

- ``suites``: one Great Expectations suite per landing table, generated from the contract;
- ``frames``: the readability step (can the drop be read and combined at all?);
- ``day_over_day``: row counts against the days already loaded;
- ``gate``: ``validate_drop`` runs all of it once per drop and explains the verdict;
- ``ranges``: the bulk variant: many days' drops stacked and checked in one GX run, to find
  the days that need ``validate_drop`` (``churnops.ingest.ingest_range``).

Importing this package is cheap: pandas, pyarrow and great_expectations load on first use.
"""

from churnops.validate.day_over_day import DropHistory
from churnops.validate.failures import Failure
from churnops.validate.gate import DATA_DOCS_DIR, REPORT_FILE, DropValidation, validate_drop

__all__ = [
    "DATA_DOCS_DIR",
    "REPORT_FILE",
    "DropHistory",
    "DropValidation",
    "Failure",
    "validate_drop",
]
