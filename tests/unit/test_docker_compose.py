"""docker-compose.yml (for users; no Docker engine here) is well-formed and consistent."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())


def test_services_of_the_prod_profile_are_there(compose: dict) -> None:
    services = compose["services"]
    assert {
        "postgres",
        "redis",
        "mlflow",
        "airflow-init",
        "airflow-api-server",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-worker",
    } <= set(services)
    for name, service in services.items():
        if name.startswith("airflow-"):
            env = service["environment"]
            assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
            assert env["CHURNOPS_PROFILE"] == "prod"
            assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
            assert "postgres" in service["depends_on"]


def test_every_churnops_variable_is_a_real_setting(compose: dict) -> None:
    """A typo in a CHURNOPS_* name would be silently ignored: each must be read somewhere."""
    code = (
        "\n".join(p.read_text() for p in (PROJECT_DIR / "include" / "churnops").rglob("*.py"))
        + (PROJECT_DIR / "dbt_project" / "profiles.yml").read_text()
    )
    env = compose["x-churnops-env"]
    names = [n for n in env if n.startswith("CHURNOPS_")]
    assert names
    for name in names:
        assert re.search(rf"\b{name}\b", code), f"{name} is not read by churnops"


def test_no_secret_literals(compose: dict) -> None:
    text = (PROJECT_DIR / "docker-compose.yml").read_text()
    assert "${AIRFLOW_JWT_SECRET:?" in text
    assert not re.search(r"PASSWORD:\s*[A-Za-z0-9]{8,}\s*$", text, re.M)


def test_mounted_files_exist(compose: dict) -> None:
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (PROJECT_DIR / source).exists(), source
    assert (PROJECT_DIR / "Dockerfile").exists()
