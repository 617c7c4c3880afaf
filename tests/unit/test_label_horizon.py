"""The 90-day label horizon is one constant, not a setting that only pretends to vary:
Python, dbt's var and the label column's name all carry the same number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from churnops.settings import LABEL_COLUMN, LABEL_HORIZON_DAYS, TrainParams, declared_settings

pytestmark = pytest.mark.unit

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
LABELS_SQL = DBT_DIR / "models" / "marts" / "fct_churn_labels.sql"


def _without_comments(sql: str) -> str:
    return re.sub(r"\{#.*?#\}", "", sql, flags=re.S)


def test_dbt_reads_the_same_horizon_as_python() -> None:
    project = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["label_horizon_days"] == LABEL_HORIZON_DAYS


def test_the_label_column_is_named_after_the_horizon() -> None:
    assert f"churned_within_{LABEL_HORIZON_DAYS}d" == LABEL_COLUMN
    labels = yaml.safe_load((DBT_DIR / "models" / "marts" / "fct_churn_labels.yml").read_text())
    (model,) = labels["models"]
    assert LABEL_COLUMN in [column["name"] for column in model["columns"]]
    # The model names the column by the one macro, which spells it from the var.
    assert "as {{ label_column() }}," in LABELS_SQL.read_text()
    macro = re.search(
        r"\{% macro label_column\(\) -%\}(.*?)\{%- endmacro %\}",
        (DBT_DIR / "macros" / "as_of.sql").read_text(),
        flags=re.S,
    )
    assert macro is not None
    assert macro.group(1).strip() == "churned_within_{{ var('label_horizon_days') }}d"


def test_no_sql_of_the_label_windows_writes_the_number_itself() -> None:
    """Every use of the horizon in the labels model and the as-of macros is the var."""
    for path in (LABELS_SQL, DBT_DIR / "macros" / "as_of.sql"):
        code = _without_comments(path.read_text())
        assert not re.search(rf"(?<![\w.]){LABEL_HORIZON_DAYS}(?![\w.])", code), path.name
    assert _without_comments(LABELS_SQL.read_text()).count("var('label_horizon_days')") >= 5


def test_the_horizon_is_no_setting() -> None:
    """No variable and no constructor argument can change it: it only would in Python."""
    assert TrainParams().label_horizon_days == LABEL_HORIZON_DAYS
    with pytest.raises(TypeError):
        TrainParams(label_horizon_days=60)  # type: ignore[call-arg]
    names = {declared.env for _, _, (_, declared, _) in declared_settings()}
    assert not [name for name in names if "HORIZON" in name]
