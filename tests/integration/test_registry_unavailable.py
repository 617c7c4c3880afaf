"""An MLflow tracking server that is down is one clear error: a real ``mlflow server`` on a
free loopback port answers, then it is stopped and the same calls fail in one line that
names the URI (never its password) and what to check, within seconds, not MLflow's
minutes of retries."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from churnops.registry import RegistryError, RegistryUnavailable
from churnops.registry.tracking import mlflow_client, registry_outages, require_tracking_server
from churnops.settings import Settings, load_settings

pytestmark = pytest.mark.integration

PASSWORD = "tr4cking-pw-not-in-any-message"
BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, subprocess.Popen]]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    env = {**os.environ, "DO_NOT_TRACK": "true", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    proc = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=open(root / "server.log", "wb"),  # noqa: SIM115 - closed with the process
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while not _healthy(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((root / "server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield port, proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _settings(tmp_path: Path, uri: str) -> Settings:
    return load_settings({"CHURNOPS_STATE_DIR": str(tmp_path), "CHURNOPS_MLFLOW_TRACKING_URI": uri})


def _assert_one_clear_line(error: RegistryUnavailable, port: int) -> None:
    message = str(error)
    assert "\n" not in message, message
    assert f"http://127.0.0.1:{port}" in message
    assert "CHURNOPS_MLFLOW_TRACKING_URI" in message and "mlflow server" in message
    assert "Connection refused" in message, message
    assert PASSWORD not in message
    assert error.__cause__ is None and error.__suppress_context__


def test_a_running_server_answers_and_a_stopped_one_is_one_line(
    server: tuple[int, subprocess.Popen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, proc = server
    # Credentials in the URI (an auth proxy in front of the server): never repeated.
    settings = _settings(tmp_path, f"http://churnops:{PASSWORD}@127.0.0.1:{port}")
    plain = _settings(tmp_path, f"http://127.0.0.1:{port}")
    require_tracking_server(settings)
    with registry_outages(plain):
        assert mlflow_client(plain).search_registered_models() == []
    # Other registry errors pass through as they are.
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as other, registry_outages(plain):
        mlflow_client(plain).get_registered_model("no-such-model")
    assert not isinstance(other.value, RegistryUnavailable)

    _stop(proc)
    assert not _healthy(port)

    began = time.monotonic()
    with pytest.raises(RegistryUnavailable) as probed:
        require_tracking_server(settings)
    assert time.monotonic() - began < 5
    _assert_one_clear_line(probed.value, port)
    assert isinstance(probed.value, RegistryError)  # the CLI's one-line errors

    # A client call made while it is down (MLflow's retries shortened for the test).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(RegistryUnavailable) as called, registry_outages(settings):
        mlflow_client(plain).search_registered_models()
    _assert_one_clear_line(called.value, port)

    # The drift monitor's first download of a version's reference: an outage, not "no
    # such version".
    from churnops.monitor.reference import load_reference

    with pytest.raises(RegistryUnavailable) as reference:
        load_reference(settings, "1")
    _assert_one_clear_line(reference.value, port)


def test_a_local_store_needs_no_server(tmp_path: Path) -> None:
    require_tracking_server(load_settings({"CHURNOPS_STATE_DIR": str(tmp_path)}))
