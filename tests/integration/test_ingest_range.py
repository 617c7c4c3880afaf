"""Bulk ingest (``ingest_range``) gives the warehouse what ``ingest_day`` day by day gives it.

Simulated ranges are loaded twice from identical landing folders, once per day and once as a
range, and everything compared: the raw rows (all columns but ``_loaded_at``), the loaded
drops, which days were rejected and with which message, what went to quarantine and the
verdict written for every drop.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnops.contracts import LANDING_TABLES, USAGE_DAILY, contract_for
from churnops.ingest import DropRejected, RangeIngestResult, ingest_day, ingest_drop, ingest_range
from churnops.landing import drop_dir, drop_files
from churnops.settings import Paths, SimulationSettings
from churnops.validate import REPORT_FILE
from churnops.validate.ranges import RangeValidator, contract_rows
from tests.conftest import SMALL_START
from tests.helpers import raw_store, shared_files
from tests.landing_drops import valid_table, write_drop

pytestmark = pytest.mark.integration

START = SMALL_START
DAYS = [START + dt.timedelta(days=i) for i in range(30)]
END = DAYS[-1]


def _day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.fixture(scope="module")
def sim() -> SimulationSettings:
    return SimulationSettings(customers=1_000, seed=7, history_start=START, history_days=60)


def _state(root: Path, name: str, template: Path) -> Paths:
    state = root / name / "state"
    paths = Paths(project_dir=state, state_dir=state)
    shutil.copytree(template, paths.landing_dir)
    return paths


def _per_day(paths: Paths, days: list[dt.date], tables: list[str] | None = None) -> dict:
    rejected = {}
    for day in days:
        try:
            ingest_day(raw_store(paths), shared_files(paths), day, tables)
        except DropRejected as error:
            rejected.update({(t, day): e for t, e in error.rejections.items()})
    return rejected


def _by_range(
    paths: Paths, start: dt.date, end: dt.date, tables: list[str] | None = None, **kwargs
) -> tuple[RangeIngestResult, dict]:
    try:
        result = ingest_range(raw_store(paths), shared_files(paths), start, end, tables, **kwargs)
    except DropRejected as error:
        assert error.range_result is not None
        result = error.range_result
        assert set(error.rejections) == {
            f"{t} dt={d.isoformat()}" for t, r in result.tables.items() for d in r.rejected
        }
    rejected = {(t, d): e for t, r in result.tables.items() for d, e in r.rejected.items()}
    return result, rejected


def _raw(paths: Paths, table: str) -> list[tuple]:
    contract = contract_for(table)
    columns = ", ".join([*contract.column_names, "_drop_date", "_source_file"])
    return raw_store(paths, read_only=True).warehouse.tuples(
        f"SELECT {columns} FROM raw.{table} ORDER BY ALL"
    )


def _loaded_drops(paths: Paths) -> list[tuple]:
    return raw_store(paths, read_only=True).warehouse.tuples(
        "SELECT table_name, drop_date, row_count, source_files FROM raw._loaded_drops ORDER BY ALL"
    )


def _verdicts(paths: Paths, folder: Path) -> dict[str, tuple]:
    """Every report under ``folder``: where, passed, rows, files, skipped checks, message."""
    found = {}
    for path in sorted(folder.rglob(REPORT_FILE)):
        report = json.loads(path.read_text())
        # a passed message counts the suite's expectations: the range suite has others
        message = None if report["passed"] else report["message"]
        message = message and message.replace(str(paths.state_dir), "<state>")
        found[str(path.relative_to(folder))] = (
            report["passed"],
            report["row_count"],
            [f["name"] for f in report["files"]],
            report["skipped_checks"],
            message,
        )
    return found


def _text(error: DropRejected, paths: Paths) -> str:
    return str(error).replace(str(paths.state_dir), "<state>")


def _assert_same(per_day: Paths, by_range: Paths, tables: list[str], a: dict, b: dict) -> None:
    for table in tables:
        assert _raw(by_range, table) == _raw(per_day, table), table
    assert _loaded_drops(by_range) == _loaded_drops(per_day)
    assert {k: _text(e, by_range) for k, e in b.items()} == {
        k: _text(e, per_day) for k, e in a.items()
    }
    for side in ("validation_dir", "quarantine_dir"):
        assert _verdicts(by_range, getattr(by_range, side)) == _verdicts(
            per_day, getattr(per_day, side)
        )
    quarantined = sorted(
        p.relative_to(per_day.quarantine_dir) for p in per_day.quarantine_dir.rglob("*.parquet")
    )
    assert quarantined == sorted(
        p.relative_to(by_range.quarantine_dir) for p in by_range.quarantine_dir.rglob("*.parquet")
    )


# ------------------------------------------------------------------ the two paths agree
TWO_BAD_DAYS = [(9, "out_of_range", "usage_daily"), (17, "duplicate_keys", "invoices")]


@pytest.fixture(scope="module")
def two_bad_days(tmp_path_factory, sim) -> tuple[Paths, Paths, dict, RangeIngestResult, dict, list]:
    from churnops.simulate import Corruption, simulate_days

    root = tmp_path_factory.mktemp("two_bad_days")
    corruptions = [Corruption(_day(i), kind, table) for i, kind, table in TWO_BAD_DAYS]
    simulate_days(sim, START, END, root / "template", corruptions)
    per_day = _state(root, "per_day", root / "template")
    by_range = _state(root, "by_range", root / "template")
    a = _per_day(per_day, DAYS)
    calls: list[tuple[str, int, int]] = []
    result, b = _by_range(by_range, START, END, progress=lambda *c: calls.append(c))
    return per_day, by_range, a, result, b, calls


def test_a_range_loads_what_day_by_day_ingest_loads(two_bad_days):
    per_day, by_range, a, result, b, _ = two_bad_days
    assert set(a) == {(table, _day(i)) for i, _, table in TWO_BAD_DAYS}
    _assert_same(per_day, by_range, list(LANDING_TABLES), a, b)


def test_the_corrupted_days_get_the_per_drop_verdict_and_the_others_load(two_bad_days):
    per_day, by_range, _, result, b, _ = two_bad_days
    usage_day, invoices_day = _day(9), _day(17)
    assert str(b[("usage_daily", usage_day)]).startswith(
        "usage_daily dt=2025-01-10 rejected: part-0.parquet column 'calls' "
        "expect_column_values_to_be_between(min 0, max 500 calls): 9 of "
    )
    assert "expect_column_values_to_be_unique" in str(b[("invoices", invoices_day)])
    for table, t in result.tables.items():
        bad = {d for (name, d) in b if name == table}
        assert set(t.days_loaded) == set(DAYS) - bad
        assert set(t.rejected) == bad
        assert set(t.checked_per_drop) == bad  # only the bad days needed the per-drop look
    assert result.rows_loaded["usage_daily"] == len(_raw(by_range, "usage_daily"))
    assert not drop_dir(by_range.landing_dir, "usage_daily", usage_day).exists()
    assert drop_files(by_range.quarantine_dir, "invoices", invoices_day)
    summary = json.loads(json.dumps(result.summary()))
    assert summary["days_loaded"]["usage_daily"] == 29
    assert list(summary["rejected"]) == ["usage_daily", "invoices"]


def test_progress_is_reported_per_table(two_bad_days):
    *_, calls = two_bad_days
    assert {c[0] for c in calls} == set(LANDING_TABLES)
    for table in LANDING_TABLES:
        done = [d for name, d, total in calls if name == table]
        assert done == sorted(done) and done[-1] == len(DAYS)
    assert all(total == len(DAYS) for _, _, total in calls)


def test_the_raised_error_lists_every_rejected_day(two_bad_days, tmp_path):
    _, by_range, *_ = two_bad_days
    paths = Paths(project_dir=tmp_path, state_dir=tmp_path / "state")
    shutil.copytree(by_range.state_dir, paths.state_dir)
    with pytest.raises(DropRejected) as caught:  # a rerun: the bad drops are in quarantine
        ingest_range(raw_store(paths), shared_files(paths), START, END)
    text = str(caught.value)
    assert text.startswith("2025-01-01 .. 2025-01-30: 2 drop(s) rejected ")
    assert "usage_daily dt=2025-01-10, invoices dt=2025-01-18" in text
    assert "usage_daily dt=2025-01-10 is in quarantine" in text
    for table in LANDING_TABLES:  # replaced, not duplicated
        assert _raw(paths, table) == _raw(by_range, table)


# kind corruptions and hand-made drops that reach every branch: misfits (unreadable, nulls in
# an integer key, an empty usage drop, a missing drop, a wrong type), a range-check flag on a
# timestamp event date, both day-over-day rules, and a drop in two files; on top of days
# already loaded day by day (the day-over-day history starts in the warehouse).
TABLES = ["customers", "usage_daily", "support_tickets", "churn_events"]
KINDS = [
    (8, "dates_outside_day", "support_tickets"),
    (11, "null_keys", "customers"),
    (13, "truncated_file", "churn_events"),
    (16, "empty_file", "usage_daily"),
    (18, "missing_drop", "usage_daily"),
    (19, "wrong_type", "support_tickets"),
]
HISTORY = DAYS[:5]


def _hand_made(landing: Path) -> None:
    # usage_daily day 21: 30% of its rows, below half the recent median
    folder = drop_dir(landing, "usage_daily", _day(21))
    data = pq.read_table(folder / "part-0.parquet")
    pq.write_table(data.slice(0, data.num_rows * 3 // 10), folder / "part-0.parquet")
    # churn_events day 24: 25 churns, more than 2% of the ~990 customers active the day before
    shutil.rmtree(drop_dir(landing, "churn_events", _day(24)))
    write_drop(landing, "churn_events", _day(24), valid_table("churn_events", _day(24), 25))
    # support_tickets day 27: two files
    folder = drop_dir(landing, "support_tickets", _day(27))
    data = pq.read_table(folder / "part-0.parquet")
    half = data.num_rows // 2
    pq.write_table(data.slice(0, half), folder / "part-0.parquet")
    pq.write_table(data.slice(half), folder / "part-1.parquet")


@pytest.fixture(scope="module")
def every_branch(tmp_path_factory, sim) -> tuple[Paths, Paths, dict, RangeIngestResult, dict]:
    from churnops.simulate import Corruption, simulate_days

    root = tmp_path_factory.mktemp("every_branch")
    corruptions = [Corruption(_day(i), kind, table) for i, kind, table in KINDS]
    simulate_days(sim, START, END, root / "template", corruptions, TABLES)
    _hand_made(root / "template")
    per_day = _state(root, "per_day", root / "template")
    by_range = _state(root, "by_range", root / "template")
    assert _per_day(per_day, HISTORY, TABLES) == _per_day(by_range, HISTORY, TABLES) == {}
    a = _per_day(per_day, DAYS[5:], TABLES)
    result, b = _by_range(by_range, DAYS[5], END, TABLES)
    return per_day, by_range, a, result, b


def test_every_branch_ends_as_day_by_day_ingest(every_branch):
    per_day, by_range, a, _, b = every_branch
    assert set(a) == {(t, _day(i)) for i, _, t in KINDS} | {
        ("usage_daily", _day(21)),
        ("churn_events", _day(24)),
    }
    _assert_same(per_day, by_range, TABLES, a, b)


def test_every_branch_messages(every_branch):
    *_, result, b = every_branch
    text = {key: str(error) for key, error in b.items()}
    assert "row_count_vs_recent_median(min ratio 0.5)" in text[("usage_daily", _day(21))]
    assert "rows_vs_active_customers(max share 0.02): 25 rows" in text[("churn_events", _day(24))]
    assert (
        "expect_column_values_to_be_between(date 2025-01-09)" in text[("support_tickets", _day(8))]
    )
    assert "drop_present" in text[("usage_daily", _day(18))]
    tickets = result.tables["support_tickets"]
    assert _day(27) in tickets.days_loaded and _day(27) not in tickets.checked_per_drop


def test_loaded_days_have_their_verdict_and_the_range_report(every_branch):
    _, by_range, *_ = every_branch
    verdict = drop_dir(by_range.validation_dir, "support_tickets", _day(27)) / REPORT_FILE
    report = json.loads(verdict.read_text())
    assert report["passed"] and [f["name"] for f in report["files"]] == [
        "part-0.parquet",
        "part-1.parquet",
    ]
    assert report["validated_with"].startswith("range suite landing.support_tickets.range over")
    ranges = list((by_range.validation_dir / "support_tickets" / "_ranges").glob("*.json"))
    assert ranges
    saved = json.loads(ranges[0].read_text())
    assert saved["flagged"]["2025-01-09"][0].startswith(
        "expect_column_pair_values_a_to_be_greater_than_b on created_at, _drop_date"
    )
    # churn on the day after an empty usage drop: no reference, the skip is reported
    churn = drop_dir(by_range.validation_dir, "churn_events", _day(17)) / REPORT_FILE
    assert "rows_vs_active_customers" in json.loads(churn.read_text())["skipped_checks"][0]


# ------------------------------------------------------------------ hand-built drops
DAY = dt.date(2025, 3, 4)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(project_dir=tmp_path, state_dir=tmp_path / "state")


def _usage(day: dt.date, rows: int = 50) -> pa.Table:
    return valid_table(USAGE_DAILY, day, rows, seed=day.toordinal())


def test_small_chunks_and_days_forced_through_the_per_drop_path_agree(paths, tmp_path, monkeypatch):
    days = [DAY + dt.timedelta(days=i) for i in range(6)]
    for day in days:
        data = _usage(day)
        if day == days[2]:  # another column order is not a reason to reject
            data = data.select(list(reversed(data.column_names)))
        write_drop(paths.landing_dir, "usage_daily", day, data)
    reference = Paths(project_dir=tmp_path / "ref", state_dir=tmp_path / "ref" / "state")
    shutil.copytree(paths.landing_dir, reference.landing_dir)
    for day in days:
        ingest_drop(raw_store(reference), shared_files(reference), "usage_daily", day)

    result = ingest_range(
        raw_store(paths), shared_files(paths), days[0], days[-1], ["usage_daily"], chunk_days=2
    )
    assert result.tables["usage_daily"].checked_per_drop == ()
    assert _raw(paths, "usage_daily") == _raw(reference, "usage_daily")
    assert len(list((paths.validation_dir / "usage_daily" / "_ranges").glob("*.json"))) == 3

    import churnops.ingest.bulk as bulk

    monkeypatch.setattr(bulk, "range_misfit", lambda contract, drop: "forced")
    again = ingest_range(raw_store(paths), shared_files(paths), days[0], days[-1], ["usage_daily"])
    assert again.tables["usage_daily"].checked_per_drop == tuple(days)
    assert again.days_loaded == {"usage_daily": 6}
    assert _raw(paths, "usage_daily") == _raw(reference, "usage_daily")
    assert _loaded_drops(paths) == _loaded_drops(reference)


def test_history_in_the_warehouse_counts_for_the_first_days(paths):
    before = [DAY - dt.timedelta(days=i) for i in (4, 3, 2, 1)]
    for day in before:
        write_drop(paths.landing_dir, "usage_daily", day, _usage(day, 100))
        ingest_drop(raw_store(paths), shared_files(paths), "usage_daily", day)
    write_drop(paths.landing_dir, "usage_daily", DAY, _usage(DAY, 30))
    following = DAY + dt.timedelta(days=1)
    write_drop(paths.landing_dir, "usage_daily", following, _usage(following, 100))
    with pytest.raises(DropRejected) as caught:
        ingest_range(raw_store(paths), shared_files(paths), DAY, following, ["usage_daily"])
    assert "30 rows is 0.30 x the median 100" in str(caught.value)
    assert caught.value.range_result is not None
    assert caught.value.range_result.tables["usage_daily"].days_loaded == (following,)


def test_unknown_tables_and_bad_ranges_fail_before_anything_loads(paths):
    with pytest.raises(KeyError, match="unknown landing table"):
        ingest_range(raw_store(paths), shared_files(paths), DAY, DAY, ["usage_daily", "nope"])
    with pytest.raises(ValueError, match="before start"):
        ingest_range(raw_store(paths), shared_files(paths), DAY, DAY - dt.timedelta(days=1))
    assert not paths.warehouse_path.exists()


def test_the_range_check_flags_exactly_the_days_with_failing_rows():
    days = [DAY + dt.timedelta(days=i) for i in range(4)]
    tables = [contract_rows(USAGE_DAILY, _usage(d)) for d in days]  # same keys every day: fine

    def with_value(table: pa.Table, column: str, row: int, value) -> pa.Table:
        values = table.column(column).to_pylist()
        values[row] = value
        i = table.schema.get_field_index(column)
        return table.set_column(i, table.schema.field(i), pa.array(values, table.column(i).type))

    tables[1] = with_value(tables[1], "calls", 3, 501)
    tables[2] = with_value(tables[2], "usage_date", 7, days[3])  # a row of the next day
    tables[3] = pa.concat_tables([tables[3], tables[3].slice(0, 1)])  # a repeated key
    check = RangeValidator(USAGE_DAILY).run(days, tables)
    assert check.row_count == 201
    assert {d: [w.split(" (")[0] for w in why] for d, why in check.flagged.items()} == {
        days[1]: ["expect_column_values_to_be_between on calls"],
        days[2]: ["expect_column_pair_values_a_to_be_greater_than_b on _drop_date_end, usage_date"],
        days[3]: ["expect_compound_columns_to_be_unique on customer_id, usage_date, _drop_date"],
    }


def test_timestamps_are_checked_by_their_date_part():
    contract = contract_for("support_tickets")
    days = [DAY, DAY + dt.timedelta(days=1)]
    tables = [
        contract_rows(contract, valid_table(contract, d, 20, seed=i)) for i, d in enumerate(days)
    ]
    stamps = tables[0].column("created_at").to_pylist()
    stamps[0] = dt.datetime(2025, 3, 4, 23, 59, 59, 999_999)  # still the day
    stamps[1] = dt.datetime(2025, 3, 5)  # the next day
    i = tables[0].schema.get_field_index("created_at")
    tables[0] = tables[0].set_column(
        i, tables[0].schema.field(i), pa.array(stamps, pa.timestamp("us"))
    )
    check = RangeValidator(contract).run(days, tables)
    assert list(check.flagged) == [DAY]
    assert check.flagged[DAY] == [
        "expect_column_pair_values_a_to_be_greater_than_b on _drop_date_end, created_at (1 rows)"
    ]
