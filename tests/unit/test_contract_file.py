"""The landing contract file is the one source: every copy of it says what it says.

Each check reads ``landing_contract.yml`` itself (plain ``yaml.safe_load``, not through
``churnops.contracts``) and compares it with one of the places the contract reaches: the
Python objects, the Great Expectations suites, the dbt raw sources and the dbt
accepted_values tests. A wrong file stops with one line naming where it is wrong.
"""

from __future__ import annotations

import ast
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import churnops.contracts as contracts
from churnops.contracts import CONTRACT_FILE, LANDING, LANDING_TABLES, ContractError, load_contract
from churnops.dbt_contract import (
    CONTRACT_MARK,
    LINEAGE_COLUMNS,
    SOURCES_FILE,
    accepted_values_tests,
    stale_files,
    write_contract,
)
from churnops.validate import day_over_day
from churnops.validate.suites import (
    EVENT_DATE_RULE,
    PANDAS_DTYPES,
    build_range_suite,
    build_suite,
)

pytestmark = pytest.mark.unit

PROJECT_DIR = Path(__file__).resolve().parents[2]
DBT_DIR = PROJECT_DIR / "dbt_project"
FILE: dict[str, Any] = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))
TABLES: dict[str, dict[str, Any]] = {t["name"]: t for t in FILE["tables"]}


def _allowed(column: dict[str, Any]) -> list[str] | None:
    """A column's allowed values as the file states them (a list, or a value set's name)."""
    value = column.get("allowed_values")
    return FILE["value_sets"][value] if isinstance(value, str) else value


def _reference_values(reference: str) -> list[str] | None:
    table, column = reference.split(".")
    [spec] = [c for c in TABLES[table]["columns"] if c["name"] == column]
    return _allowed(spec)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- the Python objects -------------------------------------------------------------------


def test_the_python_objects_say_what_the_file_says() -> None:
    assert list(LANDING_TABLES) == list(TABLES)
    for name, raw in TABLES.items():
        table = LANDING_TABLES[name]
        rules = raw.get("day_over_day") or {}
        assert (
            table.description,
            table.primary_key,
            table.event_date_column,
            table.required_every_day,
            table.min_rows_per_drop,
            table.min_row_ratio_vs_recent,
            table.max_share_of_active_customers,
        ) == (
            _one_line(raw["description"]),
            tuple(raw["primary_key"]),
            raw["event_date_column"],
            raw.get("required_every_day", True),
            raw.get("min_rows_per_drop", 0),
            rules.get("min_row_ratio_vs_recent"),
            rules.get("max_share_of_active_customers"),
        ), name
        stated = [
            (
                c["name"],
                c["type"],
                c["description"],
                c.get("nullable", False),
                c.get("min"),
                c.get("max"),
                c.get("unit"),
                _allowed(c),
            )
            for c in raw["columns"]
        ]
        built = [
            (
                c.name,
                c.arrow_type,
                c.description,
                c.nullable,
                c.min_value,
                c.max_value,
                c.unit,
                list(c.allowed_values) if c.allowed_values is not None else None,
            )
            for c in table.columns
        ]
        assert built == stated, name


def test_the_named_value_sets_and_rules_are_the_files() -> None:
    for name, values in FILE["value_sets"].items():
        assert getattr(contracts, name.upper()) == tuple(values), name
    assert dt.date(2000, 1, 1) == contracts.EARLIEST_SIGNUP
    assert (
        next(c["min"] for c in TABLES["customers"]["columns"] if c["name"] == "signup_date")
        == contracts.EARLIEST_SIGNUP
    )
    rules = FILE["day_over_day"]
    assert rules["recent_days"] == day_over_day.RECENT_DAYS
    assert rules["min_recent_days"] == day_over_day.MIN_RECENT_DAYS
    assert rules["active_customers_table"] == day_over_day.ACTIVE_CUSTOMERS_TABLE


def _literal_collections(tree: ast.AST) -> list[tuple[int, set[str]]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        if all(isinstance(i, ast.Constant) and isinstance(i.value, str) for i in items):
            found.append((node.lineno, {i.value for i in items}))
    return found


def test_no_python_module_keeps_its_own_copy_of_a_value_set() -> None:
    """Two or more values of a set written together in code is a copy that can drift."""
    copies = []
    for folder in ("include/churnops", "dags", "plugins", "bench"):
        for path in sorted((PROJECT_DIR / folder).rglob("*.py")):
            for line, strings in _literal_collections(ast.parse(path.read_text())):
                for name, values in FILE["value_sets"].items():
                    if len(strings & set(values)) >= 2:
                        copies.append(f"{path.relative_to(PROJECT_DIR)}:{line} copies {name}")
    assert copies == []


# --- the Great Expectations suites --------------------------------------------------------


def _date_bound(value: Any) -> Any:
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    return value


@pytest.mark.parametrize("name", list(TABLES))
def test_the_suites_say_what_the_file_says(name: str) -> None:
    raw = TABLES[name]
    for suite in (build_suite(LANDING_TABLES[name]), build_range_suite(LANDING_TABLES[name])):
        by_type: dict[str, list[Any]] = {}
        for e in suite.expectations:
            by_type.setdefault(e.expectation_type, []).append(e)
        [columns] = by_type["expect_table_columns_to_match_set"]
        assert columns.column_set[: len(raw["columns"])] == [c["name"] for c in raw["columns"]]
        types = {e.column: e.type_ for e in by_type["expect_column_type_to_be"]}
        if not suite.name.endswith(".range"):  # the range frame widens integers on purpose
            assert types == {c["name"]: PANDAS_DTYPES[c["type"]] for c in raw["columns"]}
        ranges = {
            e.column: (e.min_value, e.max_value)
            for e in by_type.get("expect_column_values_to_be_between", [])
            if e.meta["rule"] == "range"
        }
        assert ranges == {
            c["name"]: (_date_bound(c.get("min")), _date_bound(c.get("max")))
            for c in raw["columns"]
            if "min" in c or "max" in c
        }
        allowed = {
            e.column: e.value_set for e in by_type.get("expect_column_values_to_be_in_set", [])
        }
        assert allowed == {c["name"]: _allowed(c) for c in raw["columns"] if _allowed(c)}
        unique = by_type.get("expect_column_values_to_be_unique", []) + by_type.get(
            "expect_compound_columns_to_be_unique", []
        )
        [key] = [e.meta.get("columns") or [e.meta["column"]] for e in unique]
        assert key[: len(raw["primary_key"])] == raw["primary_key"]
        events = {e.meta["column"] for e in suite.expectations if e.meta["rule"] == EVENT_DATE_RULE}
        assert events == {raw["event_date_column"]}
    rows = [e.min_value for e in by_type.get("expect_table_row_count_to_be_between", [])]
    assert rows == []  # the range suite leaves "never empty" to the per-drop one
    per_drop = build_suite(LANDING_TABLES[name]).expectations
    minimum = [e.min_value for e in per_drop if e.meta["rule"] == "min_rows"]
    assert minimum == ([raw["min_rows_per_drop"]] if raw.get("min_rows_per_drop") else [])


# --- the dbt project ----------------------------------------------------------------------


def test_the_dbt_sources_say_what_the_file_says() -> None:
    document = yaml.safe_load((DBT_DIR / SOURCES_FILE).read_text(encoding="utf-8"))
    [source] = document["sources"]
    tables = {t["name"]: t for t in source["tables"]}
    assert list(tables) == [*TABLES, "_loaded_drops"]
    freshness = source["config"]["freshness"]
    assert freshness["warn_after"] == {
        "count": FILE["freshness"]["warn_after_hours"],
        "period": "hour",
    }
    assert freshness["error_after"] == {
        "count": FILE["freshness"]["error_after_hours"],
        "period": "hour",
    }
    for name, raw in TABLES.items():
        table = tables[name]
        assert _one_line(table["description"]).startswith(_one_line(raw["description"]))
        assert f"Primary key per drop: {', '.join(raw['primary_key'])}." in table["description"]
        columns = {c["name"]: c["description"] for c in table["columns"]}
        assert list(columns) == [c["name"] for c in raw["columns"]] + [
            n for n, _ in LINEAGE_COLUMNS
        ]
        for column in raw["columns"]:
            described = columns[column["name"]]
            assert described.startswith(column["description"].rstrip("."))
            if column.get("unit"):
                assert f"({column['unit']})" in described


def _model_files() -> list[Path]:
    return sorted((DBT_DIR / "models").rglob("*.yml"))


def test_the_dbt_accepted_values_tests_say_what_the_file_says() -> None:
    marked, unmarked = {}, []
    for path in _model_files():
        for model, column, test in accepted_values_tests(path):
            values = test["arguments"]["values"]
            reference = ((test.get("config") or {}).get("meta") or {}).get(CONTRACT_MARK)
            if reference:
                marked[f"{model}.{column}"] = (reference, values)
            else:
                unmarked.append((f"{model}.{column}", values))
    assert marked, "no accepted_values test takes its values from the contract"
    for where, (reference, values) in marked.items():
        assert values == _reference_values(reference), where
    # An unmarked test holding contract values is a hand copy the writer would never update.
    for where, values in unmarked:
        for name, contract_values in FILE["value_sets"].items():
            assert len(set(map(str, values)) & set(contract_values)) < 2, f"{where} copies {name}"


def test_the_dbt_project_is_what_the_writer_writes() -> None:
    assert stale_files(DBT_DIR) == []


# --- the writer ---------------------------------------------------------------------------


@pytest.fixture
def dbt_copy(tmp_path: Path) -> Path:
    shutil.copytree(DBT_DIR / "models", tmp_path / "models")
    return tmp_path


def _replace_once(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_check_names_what_disagrees_and_write_repairs_it(dbt_copy: Path) -> None:
    features = dbt_copy / "models/marts/fct_customer_features.yml"
    _replace_once(features, "values: [north, south, east, west, central]", "values: [north]")
    sources = dbt_copy / SOURCES_FILE
    _replace_once(sources, 'description: "Calls made (calls)."', 'description: "Calls."')
    stale = stale_files(dbt_copy)
    assert len(stale) == 2
    assert str(sources) in stale[0]
    assert "fct_customer_features.region accepted_values ['north']" in stale[1]

    assert write_contract(dbt_copy) == [sources, features]
    assert stale_files(dbt_copy) == []
    for path in (features, sources):
        assert path.read_text() == (DBT_DIR / path.relative_to(dbt_copy)).read_text()
    assert write_contract(dbt_copy) == []  # nothing left to write


def test_an_edited_contract_reaches_the_dbt_files(dbt_copy: Path, tmp_path: Path) -> None:
    edited = tmp_path / "landing_contract.yml"
    edited.write_text(
        CONTRACT_FILE.read_text().replace(
            "regions: [north, south, east, west, central]",
            "regions: [north, south, east, west, central, 'yes']",
        )
    )
    contract = load_contract(edited)
    assert contract.value_sets["regions"] != contracts.REGIONS
    assert stale_files(dbt_copy, contract) != []
    write_contract(dbt_copy, contract)
    text = (dbt_copy / "models/marts/fct_customer_features.yml").read_text()
    # Quoted where YAML would read a boolean: the test compares strings with strings.
    assert "values: [north, south, east, west, central, 'yes']" in text
    [(_, _, test)] = [
        t
        for t in accepted_values_tests(dbt_copy / "models/marts/fct_customer_features.yml")
        if t[1] == "region"
    ]
    assert test["arguments"]["values"][-1] == "yes"
    assert stale_files(dbt_copy, contract) == []


def test_a_marked_test_the_writer_cannot_edit_is_named(dbt_copy: Path) -> None:
    path = dbt_copy / "models/staging/raw/stg_raw__customers.yml"
    _replace_once(
        path,
        "values: [basic, standard, premium]\n",
        "values:\n                  - basic\n",
    )
    with pytest.raises(ContractError, match=r"stg_raw__customers\.plan_type accepted_values"):
        write_contract(dbt_copy)


# --- a wrong contract file ----------------------------------------------------------------

CALLS = "      - name: calls\n        type: int32\n        description: Calls made.\n        min: 0\n        max: 500\n"
BROKEN = [
    (
        CALLS,
        CALLS.replace("int32", "int"),
        "table usage_daily, column calls: field 'type': 'int' is not one of int64",
    ),
    (
        CALLS,
        CALLS.replace("max: 500", "max: lots"),
        "table usage_daily, column calls: field 'max': expected a number (the column is int32), got 'lots'",
    ),
    (
        CALLS,
        CALLS.replace("min: 0", "min: 900"),
        "table usage_daily, column calls: field 'max': 500 is below min 900",
    ),
    (
        CALLS,
        CALLS.replace("max: 500", "max: 500\n        alowed_values: [a]"),
        "table usage_daily, column calls: unknown field 'alowed_values'",
    ),
    (
        CALLS,
        CALLS.replace("max: 500", "max: 500\n        allowed_values: [a]"),
        "table usage_daily, column calls: field 'allowed_values': only string columns have them",
    ),
    (
        CALLS,
        CALLS.replace("        description: Calls made.\n", ""),
        "table usage_daily, column calls: field 'description' is missing",
    ),
    (
        "allowed_values: ticket_channels",
        "allowed_values: ticket_chanels",
        "table support_tickets, column channel: field 'allowed_values': no value set 'ticket_chanels'",
    ),
    (
        "primary_key: [payment_id]",
        "primary_key: [payment_ident]",
        "table payments: field 'primary_key': 'payment_ident' is not a column of the table",
    ),
    (
        "event_date_column: churn_date",
        "event_date_column: reason",
        "table churn_events: field 'event_date_column': 'reason' is string, not a date or time",
    ),
    (
        "max_share_of_active_customers: 0.02",
        "max_share_of_active_customers: 2",
        "table churn_events, day_over_day: field 'max_share_of_active_customers': expected a share",
    ),
    (
        "        min: 2000-01-01\n",
        "        min: 2000-01-01\n        min: 1990-01-01\n",
        ": field 'min' is written twice",
    ),
    (
        "active_customers_table: usage_daily",
        "active_customers_table: usage",
        "day_over_day: field 'active_customers_table'",
    ),
    (
        "plan_types: [basic, standard, premium]",
        "plan_types: [basic, standard",
        "not valid YAML at line",
    ),
]


@pytest.mark.parametrize(("old", "new", "message"), BROKEN, ids=[m[2][:40] for m in BROKEN])
def test_a_wrong_contract_says_where_in_one_line(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    broken = tmp_path / "landing_contract.yml"
    text = CONTRACT_FILE.read_text()
    assert text.count(old) == 1, old
    broken.write_text(text.replace(old, new))
    with pytest.raises(ContractError) as error:
        load_contract(broken)
    said = str(error.value)
    assert "\n" not in said
    assert said.startswith(f"{broken}: ")
    assert message in said


def test_a_table_the_pipeline_needs_cannot_be_left_out(tmp_path: Path) -> None:
    text = CONTRACT_FILE.read_text()
    cut = text.index("  - name: churn_events")
    smaller = tmp_path / "landing_contract.yml"
    smaller.write_text(text[:cut])
    contract = load_contract(smaller)  # a valid file on its own...
    with pytest.raises(
        ContractError, match=r"table 'churn_events' is missing; the pipeline needs it"
    ):
        contract.table("churn_events")  # ... but not for this pipeline
    assert list(contract.tables) == list(TABLES)[:-1]


def test_the_shipped_contract_loads_to_the_module_objects() -> None:
    assert load_contract() == LANDING
    assert CONTRACT_FILE.parent == Path(contracts.__file__).parent  # ships in the package


def test_the_command_checks_then_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from churnops.cli import main

    shutil.copytree(DBT_DIR / "models", tmp_path / "dbt_project" / "models")
    monkeypatch.setenv("CHURNOPS_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("CHURNOPS_STATE_DIR", str(tmp_path / "state"))
    sources = tmp_path / "dbt_project" / SOURCES_FILE
    sources.write_text(
        sources.read_text().replace("warn_after: {count: 30", "warn_after: {count: 3")
    )

    assert main(["contract", "--check"]) == 1
    assert f"churnops contract: {sources}: not the contract's sources" in capsys.readouterr().err
    assert main(["contract", "--write"]) == 0
    assert capsys.readouterr().out == f"wrote {sources}\n"
    assert main(["contract", "--check"]) == 0
    assert "agrees with the landing contract" in capsys.readouterr().out
