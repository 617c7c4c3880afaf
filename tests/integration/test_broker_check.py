"""The prod profile's Airflow refuses to start without a Celery broker that answers.

Measured with Airflow 3.3.2 (scheduler, CeleryExecutor, broker on a closed port): the
scheduler starts, queues the task, fails to send it about 3 s later ("Error sending Celery
workload: Error 111 connecting to 127.0.0.1:1. Connection refused." and a 115-line
traceback in the scheduler's log), the executor reports it failed and the run fails
without the task ever running: nothing in its log. So ``churnops airflow`` checks first.
"""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from churnops.orchestration.environment import (
    BrokerUnavailable,
    celery_broker_url,
    check_celery_broker,
)
from tests.conftest import PROJECT_DIR
from tests.helpers import cli_one_line_error

pytestmark = pytest.mark.integration

PASSWORD = "br0ker-pw-not-in-any-message"
REDIS = "redis://127.0.0.1:6379/0"  # this machine's Redis (scripts/ensure-services.sh)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _celery(broker: str, **extra: str) -> dict[str, str]:
    return {
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": broker,
        **extra,
    }


def test_a_closed_broker_port_is_one_line_naming_it_without_its_password() -> None:
    port = _closed_port()
    began = time.monotonic()
    with pytest.raises(BrokerUnavailable) as caught:
        check_celery_broker(_celery(f"redis://:{PASSWORD}@127.0.0.1:{port}/3"))
    assert time.monotonic() - began < 15
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"Celery broker redis://:***@127.0.0.1:{port}/3 is not reachable: ")
    assert "Connection refused" in message and "AIRFLOW__CELERY__BROKER_URL" in message
    assert PASSWORD not in message


def test_a_live_broker_passes_and_other_executors_are_not_checked(tmp_path: Path) -> None:
    try:
        check_celery_broker(_celery(REDIS))
    except BrokerUnavailable:  # this machine's Redis is down: start it, then it must pass
        subprocess.run([str(PROJECT_DIR / "scripts" / "ensure-services.sh")], check=True)
        check_celery_broker(_celery(REDIS))
    bogus = f"redis://127.0.0.1:{_closed_port()}/0"
    check_celery_broker(
        {"AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CELERY__BROKER_URL": bogus}
    )
    # Unset in the environment: the home's airflow.cfg, else Airflow's own default.
    home = tmp_path / "airflow"
    home.mkdir()
    base = {"AIRFLOW__CORE__EXECUTOR": "CeleryExecutor", "AIRFLOW_HOME": str(home)}
    assert celery_broker_url(base) == "redis://redis:6379/0"
    (home / "airflow.cfg").write_text(f"[celery]\nbroker_url = {bogus}\n")
    assert celery_broker_url(base) == bogus
    with pytest.raises(BrokerUnavailable, match=bogus):
        check_celery_broker(base)


def test_churnops_airflow_refuses_to_start_the_scheduler_in_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    env = {
        "CHURNOPS_PROFILE": "prod",
        "CHURNOPS_STATE_DIR": str(tmp_path / "state"),
        # Never reached: the broker is checked before the metadata DB is migrated.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "postgresql+psycopg2://postgres@127.0.0.1:5432/x",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{port}/0",
    }
    for args in (["airflow", "scheduler"], ["airflow", "--no-setup", "celery", "worker"]):
        line = cli_one_line_error(args, env, drop=("CHURNOPS_", "AIRFLOW"))
        assert line.startswith(
            f"churnops airflow: Celery broker redis://127.0.0.1:{port}/0 is not reachable: "
        )
    assert not (tmp_path / "state" / "airflow" / "airflow.cfg").exists()  # nothing was set up
