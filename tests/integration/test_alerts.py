"""Alerts reach a real webhook and a real SMTP server, or say clearly why they did not.

The connection comes from ``AIRFLOW_CONN_CHURNOPS_ALERTS`` (JSON and URI forms), read by the
Task SDK as a task would; the servers listen on 127.0.0.1 in threads of this process.
"""

from __future__ import annotations

import base64
import datetime as dt
import email
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from churnops.orchestration import alerts
from churnops.orchestration.alerts import ChurnopsNotifier, failure_notifier, notify_trigger

pytestmark = pytest.mark.integration

CONN_ENV = "AIRFLOW_CONN_CHURNOPS_ALERTS"
FAILED_CONTEXT = {
    "dag_id": "churn_nightly",
    "run_id": "scheduled__2025-03-02T02:30:00+00:00",
    "task_id": "score",
    "exception": ValueError("champion model not found\nsecond line"),
}


# ----------------------------------------------------------------------------- servers


class Webhook:
    """An HTTP server that records every request and answers ``status``."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                self.send_response(outer.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def json(self, index: int = -1) -> dict[str, Any]:
        return json.loads(self.requests[index]["body"])

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TinySmtpServer:
    """Just enough SMTP (no TLS, no AUTH) to receive one message per connection."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.envelopes: list[dict[str, Any]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rb") as lines:
                self._session(conn, lines)

    def _session(self, conn: socket.socket, lines: Any) -> None:
        envelope: dict[str, Any] = {"from": None, "to": [], "data": b""}
        conn.sendall(b"220 localhost tiny ESMTP\r\n")
        while line := lines.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                conn.sendall(b"250-localhost\r\n250 8BITMIME\r\n")
            elif verb == "HELO":
                conn.sendall(b"250 localhost\r\n")
            elif verb == "MAIL":
                envelope["from"] = command.split(":", 1)[1].split()[0].strip("<>")
                conn.sendall(b"250 OK\r\n")
            elif verb == "RCPT":
                envelope["to"].append(command.split(":", 1)[1].strip().strip("<>"))
                conn.sendall(b"250 OK\r\n")
            elif verb == "DATA":
                conn.sendall(b"354 end with .\r\n")
                data = b""
                while (chunk := lines.readline()) not in (b".\r\n", b""):
                    data += chunk
                envelope["data"] = data
                self.envelopes.append(envelope)
                conn.sendall(b"250 queued\r\n")
            elif verb == "QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"250 OK\r\n" if verb in {"RSET", "NOOP"} else b"502 no\r\n")

    def message(self, index: int = -1) -> Message:
        return email.message_from_bytes(self.envelopes[index]["data"])

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[TinySmtpServer]:
    server = TinySmtpServer()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def _no_alert_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CONN_ENV, "CHURNOPS_ALERT_CONN_ID", "CHURNOPS_ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ----------------------------------------------------------------------------- webhook


def test_failure_posts_json_to_the_webhook_json_form(webhook, monkeypatch, caplog) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": webhook.port,
                "extra": {"endpoint": "/hooks/churnops"},
            }
        ),
    )
    notifier = failure_notifier()
    with caplog.at_level(logging.INFO, logger="churnops.orchestration.alerts"):
        notifier(dict(FAILED_CONTEXT))
    assert notifier.delivered is True
    [request] = webhook.requests
    assert request["path"] == "/hooks/churnops"
    assert request["headers"]["Content-Type"] == "application/json"
    payload = webhook.json()
    assert payload["title"] == "churnops: churn_nightly.score failed"
    assert payload["message"] == "ValueError: champion model not found\nsecond line"
    assert payload["kind"] == "task_failed"
    assert payload["dag_id"] == "churn_nightly"
    assert payload["run_id"] == FAILED_CONTEXT["run_id"]
    assert payload["task_id"] == "score"
    assert payload["reasons"] == []
    assert payload["text"].startswith("churnops: churn_nightly.score failed\nValueError")
    assert "/hooks/churnops" not in caplog.text  # the URL's path may be its secret
    assert f"webhook http://127.0.0.1:{webhook.port}" in caplog.text


def test_trigger_posts_reasons_to_the_webhook_uri_form(webhook, monkeypatch) -> None:
    monkeypatch.setenv(CONN_ENV, f"http://127.0.0.1:{webhook.port}/services/T0/B0/secret")
    reasons = ["drift on 4 features (at least 3): tenure_days, plan_type, {a}, logins", "AUC 0.76"]
    assert notify_trigger(reasons, dt.date(2025, 3, 2), context={}) is True
    [request] = webhook.requests
    assert request["path"] == "/services/T0/B0/secret"
    payload = webhook.json()
    assert payload["kind"] == "retrain_requested"
    assert payload["title"] == "churnops: retraining requested for 2025-03-02"
    assert payload["reasons"] == reasons
    assert payload["as_of_date"] == "2025-03-02"
    assert "AUC 0.76" in payload["message"]


def test_full_url_in_host_with_basic_auth_and_headers(webhook, monkeypatch) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {
                "conn_type": "http",
                "host": f"http://127.0.0.1:{webhook.port}/full/url",
                "login": "alerts",
                "password": "hook-password",
                "extra": {"headers": {"X-Churnops-Token": "abc123"}},
            }
        ),
    )
    ChurnopsNotifier(title="hello", message="world")({})
    [request] = webhook.requests
    assert request["path"] == "/full/url"
    expected = base64.b64encode(b"alerts:hook-password").decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert request["headers"]["X-Churnops-Token"] == "abc123"
    assert webhook.json()["title"] == "hello" and webhook.json()["kind"] == "alert"


def test_url_in_extra_keeps_its_query_string(webhook, monkeypatch) -> None:
    url = f"http://127.0.0.1:{webhook.port}/v1/spaces/x/messages?key=k1&token=t2"
    monkeypatch.setenv(CONN_ENV, json.dumps({"conn_type": "http", "extra": {"url": url}}))
    ChurnopsNotifier(title="t")({})
    assert webhook.requests[0]["path"] == "/v1/spaces/x/messages?key=k1&token=t2"


def test_conn_id_comes_from_settings(webhook, monkeypatch) -> None:
    monkeypatch.setenv("CHURNOPS_ALERT_CONN_ID", "team_pager")
    monkeypatch.setenv("AIRFLOW_CONN_TEAM_PAGER", f"http://127.0.0.1:{webhook.port}/pager")
    ChurnopsNotifier(title="t")({})
    assert webhook.requests[0]["path"] == "/pager"


def test_unreachable_webhook_logs_an_error_and_does_not_raise(monkeypatch, caplog) -> None:
    monkeypatch.setenv(CONN_ENV, f"http://127.0.0.1:{_closed_port()}/hook")
    notifier = failure_notifier()
    with caplog.at_level(logging.INFO, logger="churnops.orchestration.alerts"):
        notifier(dict(FAILED_CONTEXT))  # must not raise
    assert notifier.delivered is False
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "could not be delivered" in record.getMessage()
    assert "churnops: churn_nightly.score failed" in record.getMessage()


def test_webhook_error_status_logs_an_error(monkeypatch, caplog) -> None:
    server = Webhook(status=500)
    try:
        monkeypatch.setenv(CONN_ENV, f"http://127.0.0.1:{server.port}/hook")
        with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
            assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
    finally:
        server.close()
    assert len(server.requests) == 1
    assert "HTTP Error 500" in caplog.text


# ----------------------------------------------------------------------------- no connection


def test_without_a_connection_one_clear_warning(caplog) -> None:
    notifier = failure_notifier()
    with caplog.at_level(logging.INFO, logger="churnops.orchestration.alerts"):
        notifier(dict(FAILED_CONTEXT))
    assert notifier.delivered is False
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert "\n" not in line
    assert "alerts are not configured" in line
    assert CONN_ENV in line
    assert "churnops: churn_nightly.score failed" in line
    assert "ValueError: champion model not found | second line" in line


def test_without_a_connection_the_trigger_is_logged(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="churnops.orchestration.alerts"):
        assert notify_trigger(["drift on 4 features"], dt.date(2025, 3, 2), context={}) is False
    assert "retraining requested for 2025-03-02" in caplog.text
    assert "drift on 4 features" in caplog.text


def test_unsupported_connection_type_is_logged(monkeypatch, caplog) -> None:
    monkeypatch.setenv(CONN_ENV, "postgres://u:p@db:5432/x")
    with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
        ChurnopsNotifier(title="t")({})
    assert "has type 'postgres'; use http, https or smtp" in caplog.text


# ----------------------------------------------------------------------------- e-mail


def _smtp_conn(port: int, **extra: object) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {"disable_ssl": True, "disable_tls": True, **extra},
        }
    )


def test_failure_is_emailed_to_the_settings_recipients(smtp_server, monkeypatch) -> None:
    monkeypatch.setenv(CONN_ENV, _smtp_conn(smtp_server.port, from_email="airflow@example.com"))
    monkeypatch.setenv("CHURNOPS_ALERT_EMAIL_TO", "ml-oncall@example.com; analyst@example.com")
    notifier = failure_notifier()
    notifier(dict(FAILED_CONTEXT))
    assert notifier.delivered is True
    [envelope] = smtp_server.envelopes
    assert envelope["from"] == "airflow@example.com"
    assert envelope["to"] == ["ml-oncall@example.com", "analyst@example.com"]
    message = smtp_server.message()
    assert message["Subject"] == "churnops: churn_nightly.score failed"
    body = message.get_payload(decode=True).decode()
    assert "ValueError: champion model not found" in body
    assert "Task: score" in body


def test_recipient_from_the_connection_extra_uri_form(smtp_server, monkeypatch) -> None:
    # URI form: extras are query parameters (strings, hence "true").
    monkeypatch.setenv(
        CONN_ENV,
        f"smtp://127.0.0.1:{smtp_server.port}/?disable_ssl=true&disable_tls=true&to=ops%40example.com",
    )
    assert notify_trigger(["AUC 0.70 below 0.78"], "2025-03-02", context={}) is True
    assert smtp_server.envelopes[0]["to"] == ["ops@example.com"]
    assert smtp_server.message()["Subject"] == "churnops: retraining requested for 2025-03-02"


def test_email_without_recipient_logs_an_error(smtp_server, monkeypatch, caplog) -> None:
    monkeypatch.setenv(CONN_ENV, _smtp_conn(smtp_server.port))
    with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
        ChurnopsNotifier(title="t")({})
    assert "no recipient is set" in caplog.text
    assert smtp_server.envelopes == []


@pytest.mark.unit
def test_email_message_construction() -> None:
    from airflow.sdk import Connection

    alert = alerts.alert_from_context(
        {**FAILED_CONTEXT, "exception": RuntimeError("x" * 10_000)}, reasons=["r1"]
    )
    message = alerts.build_email(alert, Connection(conn_id="c", conn_type="smtp"), ["a@b.c"])
    assert message["From"] == "churnops@localhost"
    assert message["To"] == "a@b.c"
    assert message["Subject"] == "churnops: churn_nightly.score failed"
    body = message.get_content()
    assert "- r1" in body and "DAG: churn_nightly" in body
    assert len(alert.message) == alerts.MESSAGE_LIMIT


@pytest.mark.unit
@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ({"conn_type": "https", "host": "hooks.example.com", "schema": "services/T0/B0"},
         "https://hooks.example.com/services/T0/B0"),
        ({"conn_type": "http", "host": "alerts.local", "port": 8080, "schema": "https",
          "extra": json.dumps({"endpoint": "/v1/alert"})},
         "https://alerts.local:8080/v1/alert"),
        ({"conn_type": "http", "host": "https://hooks.example.com/a/"}, "https://hooks.example.com/a"),
        ({"conn_type": "http", "host": "ignored", "extra": json.dumps({"url": "https://x.io/p?q=1"})},
         "https://x.io/p?q=1"),
    ],
)  # fmt: skip
def test_webhook_url_follows_the_http_connection_conventions(connection, url) -> None:
    from airflow.sdk import Connection

    assert alerts.webhook_url(Connection(conn_id="c", **connection)) == url


# ----------------------------------------------------------------------------- in a real task

PROBE_DAG = """
import datetime as dt
import json
import sys

from airflow.sdk import dag, task

from churnops.orchestration.alerts import failure_notifier


@dag(
    schedule=None,
    start_date=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
    default_args={"retries": 0, "on_failure_callback": failure_notifier()},
)
def churnops_alerts_probe():
    @task
    def explode():
        raise RuntimeError("nightly step failed on purpose")

    explode()


probe = churnops_alerts_probe()

if __name__ == "__main__":
    from airflow.models import Connection
    from airflow.utils.session import create_session

    # Defined in the metadata DB (as in the UI), not in the task's environment: the task
    # must fetch it through the API server.
    with create_session() as session:
        session.add(Connection(conn_id="churnops_alerts", conn_type="http", host=sys.argv[1]))
    run = probe.test(logical_date=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    print("PROBE-RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}))
"""


def test_on_failure_callback_of_a_real_task_run(airflow_db, webhook, tmp_path) -> None:
    """Wired as default_args' on_failure_callback, a failing task posts after its last try,
    with a connection it reads through the Execution API (defined in the metadata DB)."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "churnops_alerts_probe.py").write_text(PROBE_DAG)
    database = tmp_path / "airflow.db"  # a copy: this run's DAG stays out of the session's DB
    shutil.copy(airflow_db / "airflow.db", database)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")},
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{database}",
    }
    result = subprocess.run(
        [
            sys.executable,
            str(dags / "churnops_alerts_probe.py"),
            f"http://127.0.0.1:{webhook.port}/hook",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("PROBE-RESULT ")]
    assert lines, result.stdout[-3000:] + result.stderr[-3000:]
    run = json.loads(lines[-1].removeprefix("PROBE-RESULT "))
    assert run["state"] == "failed"
    [request] = webhook.requests
    assert request["path"] == "/hook"
    payload = json.loads(request["body"])
    assert payload["title"] == "churnops: churnops_alerts_probe.explode failed"
    assert payload["message"] == "RuntimeError: nightly step failed on purpose"
    assert payload["dag_id"] == "churnops_alerts_probe" and payload["task_id"] == "explode"
    assert payload["run_id"] == run["run_id"]
    assert "/dags/churnops_alerts_probe/runs/" in payload["log_url"]
    assert payload["try_number"] == 1
