"""The validation gate: is one table's drop for one day fit to load?

``validate_drop`` reads the drop (readability step, no GX), runs the table's Great
Expectations suite once over the whole drop in an ephemeral GX context, adds the
day-over-day checks, and returns a :class:`DropValidation` whose ``message()`` names the
file, column, rule and failing count of everything that is wrong. It loads nothing and
moves nothing: ``churnops.ingest`` acts on the verdict.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churnops.contracts import TableContract, arrow_type, contract_for
from churnops.landing import drop_dir
from churnops.validate.day_over_day import DropHistory, day_over_day_failures
from churnops.validate.failures import Failure, distinct_samples, format_value
from churnops.validate.frames import DropFile, ReadDrop, read_drop, to_validation_frame
from churnops.validate.suites import (
    EVENT_DATE_RULE,
    build_suite,
    drop_day_parameters,
    suite_name,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from churnops.storage import Location

REPORT_FILE = "validation_result.json"
DATA_DOCS_DIR = "data_docs"

# COMPLETE gives every failing row's index, so failures can be counted per file; the index
# query (a string of every index) is not needed. Samples come from the first rows.
RESULT_FORMAT = {
    "result_format": "COMPLETE",
    "partial_unexpected_count": 20,
    "return_unexpected_index_query": False,
}
_SAMPLES = 3
# Result keys that can hold one entry per failing row: dropped before results are stored.
_BULKY_RESULT_KEYS = ("unexpected_list", "unexpected_index_list", "unexpected_index_query")


def _import_gx():
    """Import GX with its usage statistics off (no outside network in this deployment)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def _ephemeral_context():
    """An in-memory GX context: no project on disk, no default docs site, no progress bars."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


@dataclass
class DropValidation:
    """The verdict on one drop, with everything needed to explain and file it."""

    table: str
    day: dt.date
    folder: Location  # the landing folder (local, or on the shared files' object store)
    files: list[DropFile] = field(default_factory=list)
    row_count: int | None = None
    failures: list[Failure] = field(default_factory=list)
    skipped_checks: list[str] = field(default_factory=list)
    expectations_evaluated: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    # The GX suite result, with per-row lists dropped (None when GX did not run).
    gx_result: Any = field(default=None, repr=False)
    # The drop's rows as read, kept only when the drop passed: what the loader loads.
    data: pa.Table | None = field(default=None, repr=False)
    # How the drop was validated when not by its own GX run (a bulk load's range run).
    validated_with: str = ""

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def file_names(self) -> list[str]:
        return [f.name for f in self.files]

    def message(self) -> str:
        """One readable paragraph: the verdict and every broken rule."""
        where = f"{self.table} dt={self.day.isoformat()}"
        if self.passed:
            rows = f"{self.row_count:,}" if self.row_count is not None else "?"
            return (
                f"{where} passed: {rows} rows in {len(self.files)} file(s); "
                f"{self.expectations_evaluated} expectations and the day-over-day checks hold"
                + (f" (skipped: {'; '.join(self.skipped_checks)})" if self.skipped_checks else "")
            )
        return f"{where} rejected: " + "; ".join(f.sentence() for f in self.failures)

    def to_dict(self) -> dict[str, Any]:
        gx_json = None
        if self.gx_result is not None:
            gx_json = self.gx_result.to_json_dict()
        return {
            "table": self.table,
            "day": self.day.isoformat(),
            "passed": self.passed,
            "message": self.message(),
            "landing_folder": str(self.folder),
            "files": [{"name": f.name, "bytes": f.size_bytes, "rows": f.rows} for f in self.files],
            "row_count": self.row_count,
            "failures": [f.to_dict() for f in self.failures],
            "skipped_checks": self.skipped_checks,
            "expectations_evaluated": self.expectations_evaluated,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "validated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "great_expectations_result": gx_json,
            **({"validated_with": self.validated_with} if self.validated_with else {}),
        }

    def write_report(self, directory: Location, data_docs: bool = True) -> Location:
        """Write ``validation_result.json`` (and GX Data Docs when GX ran) into ``directory``
        (a local folder, or one of the shared files' object store: GX renders the docs
        locally, then they are put there). Each file is written whole."""
        from churnops.storage import put_folder, write_text

        if data_docs and self.gx_result is not None:
            if isinstance(directory, Path):
                self.write_data_docs(directory / DATA_DOCS_DIR)
            else:
                with tempfile.TemporaryDirectory(prefix="churnops-docs-") as tmp:
                    self.write_data_docs(Path(tmp))
                    put_folder(Path(tmp), directory / DATA_DOCS_DIR)
        path = directory / REPORT_FILE
        write_text(path, json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        return path

    def write_data_docs(self, directory: Path) -> Path:
        """Render this result as a GX Data Docs site in ``directory``; return its index.html."""
        from great_expectations.core.run_identifier import RunIdentifier
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        context = _ephemeral_context()
        contract = contract_for(self.table)
        context.suites.add(build_suite(contract))
        ran = self.gx_result.meta.get("run_id")
        run_id = RunIdentifier(
            run_name=f"dt={self.day.isoformat()}",
            run_time=ran.run_time if isinstance(ran, RunIdentifier) else None,
        )
        key = ValidationResultIdentifier(
            expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite_name(contract)),
            run_id=run_id,
            batch_identifier=f"{self.table}-dt={self.day.isoformat()}",
        )
        context.validation_results_store.set(key, self.gx_result)
        context.add_data_docs_site(
            "drop",
            {
                "class_name": "SiteBuilder",
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(directory),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        context.build_data_docs(site_names=["drop"])
        return directory / "index.html"


def validate_drop(
    table: str | TableContract,
    day: dt.date,
    landing_dir: Location,
    history: DropHistory | None = None,
) -> DropValidation:
    """Validate the drop ``landing_dir/<table>/dt=<day>/`` against its contract.

    ``history`` carries the warehouse's recent row counts for the day-over-day checks
    (without it those checks are skipped and the skip is reported).
    """
    began = time.perf_counter()
    contract = table if isinstance(table, TableContract) else contract_for(table)
    folder = drop_dir(landing_dir, contract.name, day)
    drop = read_drop(folder, contract)
    report = DropValidation(table=contract.name, day=day, folder=folder, files=drop.files)
    report.seconds["read"] = time.perf_counter() - began
    if not drop.readable:
        report.failures = drop.failures
        report.seconds["total"] = time.perf_counter() - began
        return report

    assert drop.table is not None
    report.row_count = drop.table.num_rows
    report.data = drop.table
    all_files = ", ".join(report.file_names)

    gx_began = time.perf_counter()
    frame = to_validation_frame(drop.table)
    result = _run_suite(contract, day, frame)
    report.seconds["great_expectations"] = time.perf_counter() - gx_began
    report.expectations_evaluated = len(result.results)
    report.failures = _failures_from_result(result, contract, drop, frame, day)
    for r in result.results:  # keep the stored result small: no per-row lists
        for key in _BULKY_RESULT_KEYS:
            r.result.pop(key, None)
    report.gx_result = result

    dod_failures, skipped = day_over_day_failures(
        contract, report.row_count, history or DropHistory(), all_files
    )
    if history is None:
        skipped = ["day-over-day checks: no warehouse history given"]
    report.failures.extend(dod_failures)
    report.skipped_checks = skipped
    if report.failures:
        report.data = None  # only a drop that passed is ever loaded
    report.seconds["total"] = time.perf_counter() - began
    return report


def _run_suite(contract: TableContract, day: dt.date, frame: pd.DataFrame):
    gx = _import_gx()
    context = _ephemeral_context()
    suite = context.suites.add(build_suite(contract))
    batch = (
        context.data_sources.add_pandas("landing")
        .add_dataframe_asset(contract.name)
        .add_batch_definition_whole_dataframe("drop")
    )
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{contract.name}.drop", data=batch, suite=suite)
    )
    return definition.run(
        batch_parameters={"dataframe": frame},
        expectation_parameters=drop_day_parameters(day),
        result_format=RESULT_FORMAT,
    )


def _raised(result: Any) -> str | None:
    """The exception message if GX could not evaluate the expectation, else None."""
    info = result.exception_info or {}
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        if not info.get("raised_exception"):
            return None
        return info.get("exception_message") or "error"
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return value.get("exception_message") or "error"
    return None


def _failures_from_result(
    result: Any,
    contract: TableContract,
    drop: ReadDrop,
    frame: pd.DataFrame,
    day: dt.date,
) -> list[Failure]:
    assert drop.table is not None
    schema = drop.table.schema
    all_files = ", ".join(f.name for f in drop.files)
    present = set(frame.columns)
    missing = [c for c in contract.column_names if c not in present]
    extra = [c for c in frame.columns if c not in contract.column_names]
    mistyped = {
        spec.name
        for spec in contract.columns
        if spec.name in present
        and not schema.field(spec.name).type.equals(arrow_type(spec.arrow_type))
    }
    # Columns whose other expectations cannot mean anything: their failure is already told.
    explained = set(missing) | mistyped

    failures: list[Failure] = []
    ordered = sorted(
        result.results, key=lambda r: (r.expectation_config.meta or {}).get("order", 1_000)
    )
    for r in ordered:
        if r.success:
            continue
        found = _explain(r, contract, drop, frame, day, missing, extra, explained)
        if found is None:  # an error explained by a missing or mistyped column
            continue
        if not found:  # never let a failed expectation pass unreported
            config = r.expectation_config
            observed = (r.result or {}).get("observed_value")
            found = [
                Failure(
                    rule=config.type,
                    file=all_files,
                    column=(config.meta or {}).get("column"),
                    detail=f"observed {format_value(observed)}",
                )
            ]
        failures.extend(found)
    return failures


def _explain(
    r: Any,
    contract: TableContract,
    drop: ReadDrop,
    frame: pd.DataFrame,
    day: dt.date,
    missing: list[str],
    extra: list[str],
    explained: set[str],
) -> list[Failure] | None:
    """The failures behind one failed expectation result (None: already explained)."""
    assert drop.table is not None
    all_files = ", ".join(f.name for f in drop.files)
    n = drop.table.num_rows
    config = r.expectation_config
    meta = config.meta or {}
    rule = config.type
    kind = meta.get("rule")
    column = meta.get("column")
    columns = meta.get("columns") or ([column] if column else [])
    error = _raised(r)
    if error is not None:
        if explained.intersection(columns):
            return None
        return [
            Failure(
                rule=rule,
                file=all_files,
                column=", ".join(columns) or None,
                detail=f"could not be evaluated: {' '.join(str(error).split())[:200]}",
            )
        ]
    if kind == "columns":
        return [
            Failure(
                rule=rule,
                file=all_files,
                column=c,
                unexpected_count=n,
                row_count=n,
                detail=detail,
            )
            for names, detail in (
                (missing, "missing from the file"),
                (extra, "not in the contract"),
            )
            for c in names
        ]
    if kind == "type":
        found = drop.table.schema.field(column).type
        return [
            Failure(
                rule=rule,
                file=all_files,
                column=column,
                unexpected_count=n,
                row_count=n,
                params=meta.get("contract_type", ""),
                detail=f"found {found}",
            )
        ]
    if kind == "min_rows":
        return [
            Failure(
                rule=rule,
                file=all_files,
                params=f"min {meta.get('min_rows')}",
                detail=f"the drop has {n:,} rows",
            )
        ]
    params = ""
    if kind == "range":
        params = meta.get("range", "")
    elif kind == EVENT_DATE_RULE:
        params = f"date {day.isoformat()}"
    elif kind == "allowed_values":
        params = ", ".join(config.kwargs.get("value_set") or [])
    return _row_failures(r, rule, params, columns, drop, frame)


def _row_failures(
    r: Any,
    rule: str,
    params: str,
    columns: list[str],
    drop: ReadDrop,
    frame: pd.DataFrame,
) -> list[Failure]:
    """One failure per file holding failing rows, counted from GX's unexpected indices."""
    import numpy as np

    result = r.result or {}
    column_text = ", ".join(columns) or None
    show_samples = rule != "expect_column_values_to_not_be_null"
    indices = result.get("unexpected_index_list")
    if indices is None or (indices and not isinstance(indices[0], int | np.integer)):
        # No row positions: report the drop as a whole with GX's partial sample.
        partial = distinct_samples(result.get("partial_unexpected_list") or [], _SAMPLES)
        return [
            Failure(
                rule=rule,
                file=", ".join(f.name for f in drop.files),
                column=column_text,
                unexpected_count=result.get("unexpected_count"),
                row_count=result.get("element_count"),
                samples=partial if show_samples else (),
                params=params,
            )
        ]
    positions = np.sort(np.asarray(indices, dtype=np.int64))
    failures = []
    for name, start, end in drop.file_offsets():
        lo, hi = np.searchsorted(positions, [start, end])
        count = int(hi - lo)
        if not count:
            continue
        samples: tuple[str, ...] = ()
        if show_samples:
            rows = frame.iloc[positions[lo : min(hi, lo + 50)]][columns]
            values = (
                list(rows.itertuples(index=False, name=None))
                if len(columns) > 1
                else rows[columns[0]].tolist()
            )
            samples = distinct_samples(values, _SAMPLES)
        failures.append(
            Failure(
                rule=rule,
                file=name,
                column=column_text,
                unexpected_count=count,
                row_count=end - start,
                samples=samples,
                params=params,
            )
        )
    return failures


__all__ = [
    "DATA_DOCS_DIR",
    "REPORT_FILE",
    "DropHistory",
    "DropValidation",
    "format_value",
    "validate_drop",
]
