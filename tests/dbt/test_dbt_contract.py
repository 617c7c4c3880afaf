"""dbt's own reading of the project holds the landing contract's tables and allowed values.

``tests/unit/test_contract_file.py`` compares the dbt YAMLs with the contract file; here
``dbt parse`` reads them the way Cosmos does (the manifest), so a test or a source that
dbt understood differently from the YAML text fails too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from churnops.contracts import CONTRACT_FILE
from churnops.dbt_contract import CONTRACT_MARK, LINEAGE_COLUMNS

pytestmark = pytest.mark.integration

DBT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"
FILE: dict[str, Any] = yaml.safe_load(CONTRACT_FILE.read_text(encoding="utf-8"))


def _allowed(table: str, column: str) -> list[str]:
    [spec] = [
        c for t in FILE["tables"] if t["name"] == table for c in t["columns"] if c["name"] == column
    ]
    value = spec["allowed_values"]
    return FILE["value_sets"][value] if isinstance(value, str) else value


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from dbt.cli.main import dbtRunner

    work = tmp_path_factory.mktemp("dbt-parse")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CHURNOPS_DUCKDB_PATH", str(work / "unused.duckdb"))
        result = dbtRunner().invoke(
            [
                "parse",
                "--quiet",
                "--no-partial-parse",
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
                "--target-path",
                str(work / "target"),
                "--log-path",
                str(work / "logs"),
            ]
        )
    assert result.success, result.exception
    return json.loads((work / "target" / "manifest.json").read_text())


def test_the_manifest_sources_are_the_contract_tables(manifest: dict[str, Any]) -> None:
    lineage = [name for name, _ in LINEAGE_COLUMNS]
    for table in FILE["tables"]:
        source = manifest["sources"][f"source.churnops.raw.{table['name']}"]
        assert list(source["columns"]) == [c["name"] for c in table["columns"]] + lineage
        freshness = source["freshness"]
        assert freshness["warn_after"]["count"] == FILE["freshness"]["warn_after_hours"]
        assert freshness["error_after"]["count"] == FILE["freshness"]["error_after_hours"]


def test_the_manifest_accepted_values_are_the_contract_values(manifest: dict[str, Any]) -> None:
    checked = 0
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test":
            continue
        if node.get("test_metadata", {}).get("name") != "accepted_values":
            continue
        reference = node["config"]["meta"].get(CONTRACT_MARK)
        values = node["test_metadata"]["kwargs"]["values"]
        if reference:
            assert values == _allowed(*reference.split(".")), node["unique_id"]
            checked += 1
        else:  # an unmarked test must not hold a hand copy of a contract value set
            for name, contract_values in FILE["value_sets"].items():
                assert len(set(map(str, values)) & set(contract_values)) < 2, name
    assert checked >= 6  # plan, payment, region, channel in the marts; plan, category in staging
