"""The secrets the local profile generates for its Airflow are readable by their owner only."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from churnops.orchestration.environment import airflow_env, ensure_admin_password, passwords_file
from churnops.settings import load_settings

pytestmark = pytest.mark.unit


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():
    """A umask that takes nothing away: the files' modes must not depend on the user's."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_the_jwt_secret_and_the_admin_password_are_written_0600(tmp_path, open_umask) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    env = airflow_env(settings, environ={})
    secret = settings.paths.airflow_home / "jwt_secret"
    assert mode(secret) == 0o600
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret.read_text()
    assert len(secret.read_text()) >= 64
    # Generated once: every Airflow process of the project signs with the same secret.
    assert airflow_env(settings, environ={})["AIRFLOW__API_AUTH__JWT_SECRET"] == secret.read_text()

    password = ensure_admin_password(settings)
    assert mode(passwords_file(settings)) == 0o600
    assert json.loads(passwords_file(settings).read_text()) == {"admin": password}
    assert ensure_admin_password(settings) == password
    # No temporary file is left beside them.
    assert sorted(p.name for p in settings.paths.airflow_home.iterdir()) == [
        "jwt_secret",
        passwords_file(settings).name,
    ]


def test_a_given_admin_password_is_written_0600_too(tmp_path, open_umask) -> None:
    env = {"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_AIRFLOW_ADMIN_PASSWORD": "s3cret-pw"}
    settings = load_settings(env)
    ensure_admin_password(load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)}))  # generated
    assert ensure_admin_password(settings) == "s3cret-pw"  # replaced by the given one
    assert mode(passwords_file(settings)) == 0o600
    assert json.loads(passwords_file(settings).read_text()) == {"admin": "s3cret-pw"}


def test_secrets_an_older_version_wrote_0644_are_made_private(tmp_path, open_umask) -> None:
    settings = load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)})
    home = settings.paths.airflow_home
    home.mkdir(parents=True)
    (home / "jwt_secret").write_text("x" * 86)
    passwords_file(settings).write_text(json.dumps({"admin": "old"}))
    for path in (home / "jwt_secret", passwords_file(settings)):
        path.chmod(0o644)

    env = airflow_env(settings, environ={})
    assert ensure_admin_password(settings) == "old"  # kept, only its mode changes
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == "x" * 86
    assert mode(home / "jwt_secret") == 0o600
    assert mode(passwords_file(settings)) == 0o600
