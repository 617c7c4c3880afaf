"""Every CHURNOPS_* setting is declared once: loading, the checks, the README's tables and
.env.example come from the declaration, and nothing else reads the variables."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from churnops.settings import (
    Settings,
    SettingsError,
    TrainParams,
    declared_settings,
    load_settings,
    read_setting,
)
from churnops.settings.declare import _without_none, choices_of, parse_value, show_value
from churnops.settings.docs import (
    BEGIN,
    END,
    ENV_BEGIN,
    ENV_END,
    env_example,
    markdown,
    splice,
    targets,
)

pytestmark = pytest.mark.unit

PROJECT_DIR = Path(__file__).resolve().parents[2]
DECLARED = [(path, item, declared, hint) for path, _, (item, declared, hint) in declared_settings()]
NAMES = [declared.env for _, _, declared, _ in DECLARED]

# Values for the settings whose type the generic rule below cannot vary.
NON_DEFAULT_TEXT = {
    "CHURNOPS_POSTGRES_WORK_MEM": "1GB",
    "CHURNOPS_RISK_BANDS": "high:0.5,medium:0.2,low:0",
    "CHURNOPS_REASON_BAND": "medium",
    "CHURNOPS_DRIFT_FEATURE_METHODS": "tenure_days=ks:0.01",
    "CHURNOPS_BENCH_ENGINE_STAGES": "dbt,frame",
    "CHURNOPS_DATA_URL": "/mnt/churnops",
    "CHURNOPS_NIGHTLY_CRON": "15 1 * * *",
    "CHURNOPS_RETRAIN_CRON": "0 5 2 * *",
    "CHURNOPS_CONTACT_CAPACITY": "500",  # unset by default: no default to vary
    "CHURNOPS_ROLLOUT_STEPS": "0.3,1",
}
# Settings that are only valid beside another one.
COMPANIONS = {
    "CHURNOPS_WAREHOUSE_POOL_SLOTS": {"CHURNOPS_WAREHOUSE": "postgres"},
    "CHURNOPS_THRESHOLD_RULE": {"CHURNOPS_CONTACT_CAPACITY": "500"},  # the capacity rule's N
}


def _non_default(declared: Any, hint: Any, default: Any) -> str:
    """A value of the setting's type that differs from its default and obeys its bounds."""
    if declared.env in NON_DEFAULT_TEXT:
        return NON_DEFAULT_TEXT[declared.env]
    choices = choices_of(hint)
    if choices:
        return next(choice for choice in reversed(choices) if choice != default)
    if isinstance(default, bool):
        return "false" if default else "true"
    if isinstance(default, int):
        return str(default + 1 if declared.maximum is None else declared.maximum - 1)
    if isinstance(default, float):
        if declared.maximum is not None:
            low = declared.above if declared.above is not None else declared.minimum or 0
            return str((low + declared.maximum) / 2 + 0.001)
        return str(round(default * 1.5 + 0.01, 4))
    kind = _without_none(hint)
    if kind is dt.date:
        return "2025-03-04"
    if kind is Path:
        return "/tmp/churnops-elsewhere"
    return f"{default or 'x'}-changed"


def _attribute(settings: Settings, path: str, name: str) -> Any:
    owner: Any = settings
    for part in filter(None, path.split(".")):
        owner = getattr(owner, part)
    return getattr(owner, name)


@pytest.mark.parametrize(("path", "item", "declared", "hint"), DECLARED, ids=NAMES)
def test_each_setting_is_read_from_its_variable(path, item, declared, hint) -> None:
    """Set alone to a value other than its default, the variable reaches its attribute."""
    defaults = load_settings({})
    raw = _non_default(declared, hint, _attribute(defaults, path, item.name))
    settings = load_settings({declared.env: raw, **COMPANIONS.get(declared.env, {})})
    value = _attribute(settings, path, item.name)
    assert value == parse_value(declared, hint, raw)
    assert value != _attribute(defaults, path, item.name)


def test_the_declaration_is_complete_and_unambiguous() -> None:
    assert len(NAMES) == len(set(NAMES)) >= 90
    for _, item, declared, _ in DECLARED:
        assert declared.env.startswith("CHURNOPS_"), declared.env
        assert declared.help and not declared.help.endswith("."), declared.env
        if declared.derive is not None or item.default is dataclasses.MISSING:
            assert declared.default_text, f"{declared.env}: a derived default needs words"


# The settings read by type (free text and parse= types are checked further down).
TYPED = [
    entry
    for entry in DECLARED
    if choices_of(entry[3]) or _without_none(entry[3]) in (bool, int, float, dt.date)
]


@pytest.mark.parametrize(
    ("path", "item", "declared", "hint"), TYPED, ids=[entry[2].env for entry in TYPED]
)
def test_a_bad_value_is_one_line_naming_the_variable_and_what_is_allowed(
    path, item, declared, hint
) -> None:
    """A value of the wrong type, outside the choices or the bounds stops with one line
    that starts with VARIABLE=value and says what is allowed."""
    choices = choices_of(hint)
    kind = _without_none(hint)
    if choices:
        bad, allowed = "nonsense", f"is not one of {', '.join(choices)}"
    elif kind is bool:
        bad, allowed = "maybe", "is not a boolean (true/false)"
    elif kind is int:
        bad, allowed = "lots", "is not a whole number"
    elif kind is float:
        bad, allowed = "lots", "is not a number"
    else:
        bad, allowed = "01/02/2025", "is not a date (YYYY-MM-DD)"
    with pytest.raises(SettingsError) as refused:
        load_settings({declared.env: bad})
    message = str(refused.value)
    assert message == f"{declared.env}={bad!r} {allowed}"
    assert "\n" not in message
    rule = declared.rule()
    if rule is not None and declared.minimum is not None:
        below = str(int(declared.minimum) - 1) if kind is int else str(declared.minimum - 1)
        with pytest.raises(SettingsError) as out_of_bounds:
            load_settings({declared.env: below})
        assert str(out_of_bounds.value) == f"{declared.env}={below} {rule}"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CHURNOPS_RECALL_TARGET": "1.5"}, "CHURNOPS_RECALL_TARGET=1.5 must be in (0, 1]"),
        ({"CHURNOPS_CANARY_SHARE": "-0.1"}, "CHURNOPS_CANARY_SHARE=-0.1 must be in [0, 1]"),
        ({"CHURNOPS_TRAIN_MONTHS": "0"}, "CHURNOPS_TRAIN_MONTHS=0 must be positive"),
        ({"CHURNOPS_AIRFLOW_PORT": "70000"}, "CHURNOPS_AIRFLOW_PORT=70000 must be in [1, 65535]"),
        ({"CHURNOPS_POSTGRES_WORK_MEM": "lots"}, "CHURNOPS_POSTGRES_WORK_MEM='lots' is not a"),
        ({"CHURNOPS_RISK_BANDS": "high"}, "CHURNOPS_RISK_BANDS part 'high' is not NAME:FLOOR"),
        ({"CHURNOPS_BENCH_ENGINE_STAGES": "dbt,gpu"}, "CHURNOPS_BENCH_ENGINE_STAGES='dbt,gpu'"),
        ({"CHURNOPS_DRIFT_NUM_METHOD": "t-test"}, "CHURNOPS_DRIFT_NUM_METHOD='t-test' is not one"),
    ],
)
def test_bounds_and_parsed_values_are_refused_by_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(env)
    assert str(refused.value).startswith(message)


def test_values_built_in_code_obey_the_same_bounds() -> None:
    with pytest.raises(SettingsError, match=r"^TrainParams.recall_target must be in \(0, 1\]$"):
        TrainParams(recall_target=2.0)
    with pytest.raises(SettingsError, match="^unknown class weighting 'heavy'; known: balanced"):
        TrainParams(class_weighting="heavy")  # type: ignore[arg-type]


def test_derived_defaults_follow_the_settings_they_depend_on(tmp_path: Path) -> None:
    prod = load_settings({"CHURNOPS_PROFILE": "prod", "CHURNOPS_STATE_DIR": str(tmp_path)})
    assert prod.warehouse.kind == "postgres" and prod.warehouse.dbt_target == "prod"
    assert prod.orchestration.warehouse_pool_slots == 4
    assert prod.mlflow.tracking_uri == "http://127.0.0.1:5000"
    assert prod.mlflow.artifact_location is None
    local = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_SIM_START": "2024-05-06"})
    assert local.warehouse.duckdb_path == tmp_path / "warehouse.duckdb"
    assert local.orchestration.nightly_start == dt.date(2024, 5, 6)
    assert local.orchestration.manual_start == dt.date(2024, 5, 6)
    assert local.storage.data_url == str(tmp_path / "data") and not local.storage.configured
    assert local.mlflow.tracking_uri == f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


def test_the_admin_password_is_never_shown() -> None:
    settings = load_settings({"CHURNOPS_AIRFLOW_ADMIN_PASSWORD": "pw-s3cr3t-value"})
    assert settings.airflow.admin_password == "pw-s3cr3t-value"
    assert "pw-s3cr3t-value" not in repr(settings) and "pw-s3cr3t-value" not in str(settings)
    assert "pw-s3cr3t-value" not in markdown() + env_example()


def test_one_variable_can_be_read_alone() -> None:
    """The CLI's CHURNOPS_DEBUG must work even when another setting is broken."""
    broken = {"CHURNOPS_SIM_CUSTOMERS": "lots", "CHURNOPS_DEBUG": "1"}
    assert read_setting("CHURNOPS_DEBUG", broken) is True
    assert read_setting("CHURNOPS_DEBUG", {}) is False
    assert read_setting("CHURNOPS_BENCH_CUSTOMERS", {}) == 500_000
    assert read_setting(
        "CHURNOPS_BENCH_ENGINE_STAGES", {"CHURNOPS_BENCH_ENGINE_STAGES": "dbt"}
    ) == ("dbt",)
    with pytest.raises(SettingsError, match="CHURNOPS_BENCH_HISTORY_DAYS=0 must be at least 1"):
        read_setting("CHURNOPS_BENCH_HISTORY_DAYS", {"CHURNOPS_BENCH_HISTORY_DAYS": "0"})
    with pytest.raises(KeyError):
        read_setting("CHURNOPS_NOT_A_SETTING", {})


# ----------------------------------------------------------------------------- docs
def test_the_readme_and_env_example_agree_with_the_declaration() -> None:
    """Regenerate with `make settings-docs` when this fails."""
    for path, wanted in targets(PROJECT_DIR).items():
        assert path.read_text() == wanted, f"{path.name} is stale: run make settings-docs"


def test_the_generated_docs_name_every_setting_with_its_default() -> None:
    table, example = markdown(), env_example()
    for _, item, declared, hint in DECLARED:
        assert f"| `{declared.env}` |" in table
        if declared.secret:
            assert f"\n{declared.env}=\n" in example  # docker compose requires it: empty
        elif declared.default_text is None:
            assert f"# {declared.env}={parse_text(declared, hint, item.default)}\n" in example


def parse_text(declared: Any, hint: Any, default: Any) -> str:
    """The default as the docs write it, which reads back as the default."""
    shown = show_value(declared, hint, default)
    assert shown == "" or parse_value(declared, hint, shown) == default  # round trip
    return shown


def test_splice_replaces_only_the_generated_part() -> None:
    text = f"before\n{BEGIN}\nold table\n{END}\nafter\n"
    assert (
        splice(text, f"{BEGIN}\nnew\n{END}", BEGIN, END) == f"before\n{BEGIN}\nnew\n{END}\nafter\n"
    )
    env = f"# head\n{ENV_BEGIN}\n# CHURNOPS_X=1\n{ENV_END}\n"
    assert (
        splice(env, f"{ENV_BEGIN}\n{ENV_END}", ENV_BEGIN, ENV_END)
        == f"# head\n{ENV_BEGIN}\n{ENV_END}\n"
    )


# ------------------------------------------------------------------ no reads elsewhere
ENV_READERS = {"get", "getenv", "pop", "setdefault"}


def churnops_reads(source: str) -> list[str]:
    """CHURNOPS_* variables ``source`` reads from an environment: ``X.get(NAME)``,
    ``os.getenv(NAME)``, ``X[NAME]`` (not as an assignment target), with NAME a string
    literal or a module-level constant holding one. Writes (dict literals, assignments
    to ``environ[NAME]``) are not reads."""
    tree = ast.parse(source)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }

    def name_of(node: ast.expr) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name):
            return constants.get(node.id)
        return None

    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ENV_READERS:
                key = name_of(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key = name_of(node.slice)
        if key and key.startswith("CHURNOPS_"):
            found.append(key)
    return found


def test_the_read_finder_finds_reads_and_ignores_writes() -> None:
    source = (
        "import os\n"
        'PORT_ENV = "CHURNOPS_AIRFLOW_PORT"\n'
        'a = os.environ.get("CHURNOPS_SIM_DAYS", "1")\n'
        'b = os.getenv("CHURNOPS_SIM_SEED")\n'
        'c = environ["CHURNOPS_PROFILE"]\n'
        "d = env.get(PORT_ENV)\n"
        'os.environ["CHURNOPS_STATE_DIR"] = "/tmp"\n'
        'e = {"CHURNOPS_DBT_TARGET": "local"}\n'
    )
    assert sorted(churnops_reads(source)) == [
        "CHURNOPS_AIRFLOW_PORT",
        "CHURNOPS_PROFILE",
        "CHURNOPS_SIM_DAYS",
        "CHURNOPS_SIM_SEED",
    ]


def test_no_churnops_variable_is_read_outside_the_settings_package() -> None:
    settings_package = PROJECT_DIR / "include" / "churnops" / "settings"
    files = [
        *(PROJECT_DIR / "include" / "churnops").rglob("*.py"),
        *(PROJECT_DIR / "dags").rglob("*.py"),
        *(PROJECT_DIR / "plugins").rglob("*.py"),
        *(PROJECT_DIR / "bench").rglob("*.py"),
    ]
    assert len(files) > 50
    reads = {
        str(path.relative_to(PROJECT_DIR)): churnops_reads(path.read_text())
        for path in files
        if settings_package not in path.parents
    }
    assert {path: names for path, names in reads.items() if names} == {}
