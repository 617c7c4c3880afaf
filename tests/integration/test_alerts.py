"""Alerts reach a real webhook and a real SMTP server, or say clearly why they did not.

The connection comes from ``AIRFLOW_CONN_CHURNOPS_ALERTS`` (JSON and URI forms), read by the
Task SDK as a task would; Airflow's HttpNotifier and SmtpNotifier deliver. The servers listen
on 127.0.0.1: an HTTP server in a thread, and aiosmtpd (plain, SSL, STARTTLS with AUTH) with
a self-signed certificate that the client trusts through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email
import ipaddress
import json
import logging
import os
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from churnops.orchestration.alerts import ChurnopsNotifier, failure_notifier, notify_trigger

pytestmark = pytest.mark.integration

CONN_ENV = "AIRFLOW_CONN_CHURNOPS_ALERTS"
FAILED_CONTEXT = {
    "dag_id": "churn_nightly",
    "run_id": "scheduled__2025-03-02T02:30:00+00:00",
    "task_id": "score",
    "exception": ValueError("champion model not found\nsecond line"),
}
SMTP_LOGIN, SMTP_PASSWORD = "alerts@example.com", "smtp-s3cret-password"


# ----------------------------------------------------------------------------- servers


class Webhook:
    """An HTTP server that records every request and answers ``status`` (or nothing at all,
    for ``silent_seconds``)."""

    def __init__(self, status: int = 200, silent_seconds: float = 0) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                time.sleep(silent_seconds)
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


class SmtpServer:
    """aiosmtpd on 127.0.0.1 that records every message: plain, implicit SSL, or STARTTLS
    with LOGIN/PLAIN authentication required."""

    def __init__(self, mode: str = "plain", cert: tuple[Path, Path] | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        self.envelopes: list[dict[str, Any]] = []
        self.logins: list[str] = []
        outer = self

        class Recorder:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                outer.envelopes.append(
                    {
                        "from": envelope.mail_from,
                        "to": list(envelope.rcpt_tos),
                        "data": envelope.original_content or envelope.content,
                        "tls": server.transport.get_extra_info("ssl_object") is not None,
                    }
                )
                return "250 Message accepted for delivery"

        def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
            ok = isinstance(auth_data, LoginPassword) and (
                auth_data.login.decode(),
                auth_data.password.decode(),
            ) == (SMTP_LOGIN, SMTP_PASSWORD)
            if ok:
                outer.logins.append(auth_data.login.decode())
            return AuthResult(success=ok, handled=False)  # aiosmtpd answers 535 itself

        context = None
        if cert is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*cert)
        kwargs: dict[str, Any] = {}
        if mode == "ssl":
            kwargs["ssl_context"] = context
        elif mode == "starttls":
            kwargs.update(
                tls_context=context,
                require_starttls=True,
                auth_required=True,
                authenticator=authenticate,
            )
        self.port = _closed_port()
        self.controller = Controller(Recorder(), hostname="127.0.0.1", port=self.port, **kwargs)
        self.controller.start()

    def message(self, index: int = -1) -> Message:
        return email.message_from_bytes(self.envelopes[index]["data"])

    def body(self, index: int = -1) -> str:
        [part] = [p for p in self.message(index).walk() if p.get_content_type() == "text/html"]
        return part.get_payload(decode=True).decode()

    def close(self) -> None:
        self.controller.stop()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    yield server
    server.close()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (certificate file, key file)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture(autouse=True)
def _no_alert_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (CONN_ENV, "CHURNOPS_ALERT_CONN_ID", "CHURNOPS_ALERT_EMAIL_TO"):
        monkeypatch.delenv(name, raising=False)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http_conn(url: str, **fields: object) -> str:
    return json.dumps({"conn_type": "http", "host": url, **fields})


# ----------------------------------------------------------------------------- webhook


def test_failure_posts_json_to_the_webhook(webhook, monkeypatch, caplog) -> None:
    monkeypatch.setenv(CONN_ENV, _http_conn(f"http://127.0.0.1:{webhook.port}/hooks/churnops"))
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


def test_webhook_from_host_port_and_protocol_fields(webhook, monkeypatch) -> None:
    """Airflow's HTTP connection in parts: the schema field is the protocol."""
    monkeypatch.setenv(
        CONN_ENV,
        json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": webhook.port, "schema": "http"}
        ),
    )
    assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is True
    assert webhook.requests[0]["path"] == "/"
    assert webhook.json()["kind"] == "retrain_requested"


def test_trigger_posts_reasons_to_the_webhook(webhook, monkeypatch) -> None:
    monkeypatch.setenv(
        CONN_ENV, _http_conn(f"http://127.0.0.1:{webhook.port}/services/T0/B0/secret")
    )
    # Braces reach the reader as written: the notifiers' Jinja rendering is not applied.
    reasons = ["drift on 4 features (at least 3): tenure_days, plan_type, {a}, {{ b }}", "AUC 0.76"]
    assert notify_trigger(reasons, dt.date(2025, 3, 2), context={}) is True
    [request] = webhook.requests
    assert request["path"] == "/services/T0/B0/secret"
    payload = webhook.json()
    assert payload["kind"] == "retrain_requested"
    assert payload["title"] == "churnops: retraining requested for 2025-03-02"
    assert payload["reasons"] == reasons
    assert payload["as_of_date"] == "2025-03-02"
    assert "AUC 0.76" in payload["message"]


def test_full_url_in_host_with_basic_auth_and_headers(webhook, monkeypatch, caplog) -> None:
    monkeypatch.setenv(
        CONN_ENV,
        _http_conn(
            f"http://127.0.0.1:{webhook.port}/full/url",
            login="alerts",
            password="hook-password",
            extra={"X-Churnops-Token": "abc123"},  # an HTTP connection's extras are headers
        ),
    )
    with caplog.at_level(logging.DEBUG):
        ChurnopsNotifier(title="hello", message="world")({})
    [request] = webhook.requests
    assert request["path"] == "/full/url"
    expected = base64.b64encode(b"alerts:hook-password").decode()
    assert request["headers"]["Authorization"] == f"Basic {expected}"
    assert request["headers"]["X-Churnops-Token"] == "abc123"
    assert webhook.json()["title"] == "hello" and webhook.json()["kind"] == "alert"
    assert "hook-password" not in caplog.text and expected not in caplog.text


def test_url_keeps_its_query_string(webhook, monkeypatch) -> None:
    url = f"http://127.0.0.1:{webhook.port}/v1/spaces/x/messages?key=k1&token=t2"
    monkeypatch.setenv(CONN_ENV, _http_conn(url))
    ChurnopsNotifier(title="t")({})
    assert webhook.requests[0]["path"] == "/v1/spaces/x/messages?key=k1&token=t2"


def test_conn_id_comes_from_settings(webhook, monkeypatch) -> None:
    monkeypatch.setenv("CHURNOPS_ALERT_CONN_ID", "team_pager")
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAM_PAGER", _http_conn(f"http://127.0.0.1:{webhook.port}/pager")
    )
    ChurnopsNotifier(title="t")({})
    assert webhook.requests[0]["path"] == "/pager"


def test_unreachable_webhook_logs_one_line_without_its_secret(monkeypatch, caplog) -> None:
    port = _closed_port()
    monkeypatch.setenv(CONN_ENV, _http_conn(f"http://127.0.0.1:{port}/T0/hook-secret?token=t9"))
    notifier = failure_notifier()
    with caplog.at_level(logging.DEBUG):
        notifier(dict(FAILED_CONTEXT))  # must not raise
    assert notifier.delivered is False
    [record] = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("churnops")
    ]
    line = record.getMessage()
    assert "\n" not in line
    assert "could not be delivered" in line
    assert f"webhook http://127.0.0.1:{port}" in line
    assert "Connection refused" in line
    assert "churnops: churn_nightly.score failed" in line
    assert "hook-secret" not in caplog.text and "t9" not in line


def test_webhook_that_does_not_answer_times_out(monkeypatch, caplog) -> None:
    server = Webhook(silent_seconds=3)
    try:
        monkeypatch.setenv(
            CONN_ENV, _http_conn(f"http://127.0.0.1:{server.port}/hook", extra={"timeout": 0.5})
        )
        started = time.monotonic()
        with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
            assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
        assert time.monotonic() - started < 2.5
    finally:
        server.close()
    assert "could not be delivered" in caplog.text and "ReadTimeout" in caplog.text


def test_webhook_error_status_logs_an_error(monkeypatch, caplog) -> None:
    server = Webhook(status=500)
    try:
        monkeypatch.setenv(CONN_ENV, _http_conn(f"http://127.0.0.1:{server.port}/hook"))
        with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
            assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
    finally:
        server.close()
    assert len(server.requests) == 1
    assert "500:Internal Server Error" in caplog.text


def test_uri_form_with_a_path_says_how_to_write_it(webhook, monkeypatch, caplog) -> None:
    """Airflow reads a URI's path as the protocol of an HTTP connection: the webhook's path
    cannot go there. One line says so, without the path."""
    monkeypatch.setenv(CONN_ENV, f"http://127.0.0.1:{webhook.port}/services/T0/B0/secret")
    with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
        assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
    assert webhook.requests == []
    [record] = caplog.records
    assert "put the webhook's whole URL in the host" in record.getMessage()
    assert "secret" not in record.getMessage()


def test_https_uri_is_never_posted_over_plain_http(webhook, monkeypatch, caplog) -> None:
    """The type does not set the protocol of Airflow's HTTP connection: an https URI
    without a path would go out as http. It is refused instead."""
    monkeypatch.setenv(CONN_ENV, f"https://127.0.0.1:{webhook.port}")
    with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
        assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
    assert webhook.requests == []
    assert "would post over 'http', not 'https'" in caplog.text


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
    body = smtp_server.body()
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
    assert smtp_server.envelopes[0]["from"] == "churnops@localhost"  # no from_email, no login
    assert smtp_server.message()["Subject"] == "churnops: retraining requested for 2025-03-02"
    assert "- AUC 0.70 below 0.78" in smtp_server.body()


def test_email_without_recipient_logs_an_error(smtp_server, monkeypatch, caplog) -> None:
    monkeypatch.setenv(CONN_ENV, _smtp_conn(smtp_server.port))
    with caplog.at_level(logging.ERROR, logger="churnops.orchestration.alerts"):
        ChurnopsNotifier(title="t")({})
    assert "no recipient is set" in caplog.text
    assert smtp_server.envelopes == []


def test_email_over_implicit_ssl(certificate, monkeypatch) -> None:
    """Implicit SSL, the server's certificate verified. The SMTP provider also tries STARTTLS
    unless ``disable_tls``: inside SSL that must be switched off."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    server = SmtpServer(mode="ssl", cert=certificate)
    try:
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "extra": {"disable_tls": True, "to": "ops@example.com"},
                }
            ),
        )
        notifier = failure_notifier()
        notifier(dict(FAILED_CONTEXT))
    finally:
        server.close()
    assert notifier.delivered is True
    [envelope] = server.envelopes
    assert envelope["tls"] is True and envelope["to"] == ["ops@example.com"]
    assert server.message()["Subject"] == "churnops: churn_nightly.score failed"


def test_email_over_starttls_with_login(certificate, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    server = SmtpServer(mode="starttls", cert=certificate)
    try:
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "login": SMTP_LOGIN,
                    "password": SMTP_PASSWORD,
                    "extra": {"disable_ssl": True, "to": "ops@example.com"},
                }
            ),
        )
        with caplog.at_level(logging.DEBUG):
            assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is True
    finally:
        server.close()
    assert server.logins == [SMTP_LOGIN]
    [envelope] = server.envelopes
    assert envelope["tls"] is True
    assert envelope["from"] == SMTP_LOGIN  # no from_email: the login sends
    assert SMTP_PASSWORD not in caplog.text


def test_smtp_wrong_password_logs_one_line_without_it(certificate, monkeypatch, caplog) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    server = SmtpServer(mode="starttls", cert=certificate)
    try:
        monkeypatch.setenv(
            CONN_ENV,
            json.dumps(
                {
                    "conn_type": "smtp",
                    "host": "127.0.0.1",
                    "port": server.port,
                    "login": SMTP_LOGIN,
                    "password": "not-the-password",
                    "extra": {"disable_ssl": True, "to": "ops@example.com"},
                }
            ),
        )
        with caplog.at_level(logging.DEBUG):
            assert notify_trigger(["AUC 0.70"], "2025-03-02", context={}) is False
    finally:
        server.close()
    assert server.envelopes == []
    [record] = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("churnops")
    ]
    assert f"smtp 127.0.0.1:{server.port}" in record.getMessage()
    assert "SMTPAuthenticationError" in record.getMessage()
    assert "not-the-password" not in caplog.text


def test_unreachable_smtp_server_logs_one_line(monkeypatch, caplog) -> None:
    port = _closed_port()
    monkeypatch.setenv(CONN_ENV, _smtp_conn(port, to="ops@example.com"))
    notifier = failure_notifier()
    with caplog.at_level(logging.INFO, logger="churnops.orchestration.alerts"):
        notifier(dict(FAILED_CONTEXT))  # must not raise
    assert notifier.delivered is False
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    line = record.getMessage()
    assert "\n" not in line
    assert (
        f"could not be delivered through connection 'churnops_alerts' to smtp 127.0.0.1:{port}"
        in line
    )
    assert "Connection refused" in line
    assert "churnops: churn_nightly.score failed" in line


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

    @task
    def alert_a_dead_webhook():
        from churnops.alert_text import build_alert
        from churnops.orchestration.alerts import send_alert

        assert not send_alert(build_alert(title="probe"), conn_id="churnops_dead")

    explode()
    alert_a_dead_webhook()


probe = churnops_alerts_probe()

if __name__ == "__main__":
    from airflow.models import Connection
    from airflow.utils.session import create_session

    # Defined in the metadata DB (as in the UI), not in the task's environment: the task
    # must fetch it through the API server.
    with create_session() as session:
        session.add(Connection(conn_id="churnops_alerts", conn_type="http", host=sys.argv[1]))
        session.add(Connection(conn_id="churnops_dead", conn_type="http", host=sys.argv[2]))
    run = probe.test(logical_date=dt.datetime(2025, 3, 2, tzinfo=dt.UTC))
    print("PROBE-RESULT " + json.dumps({"state": str(run.state), "run_id": run.run_id}))
"""


def test_on_failure_callback_of_a_real_task_run(airflow_db, webhook, tmp_path) -> None:
    """Wired as default_args' on_failure_callback, a failing task posts after its last try,
    with a connection it reads through the Execution API (defined in the metadata DB).
    An unreachable webhook's secret path stays out of the task log, the HTTP hook's own
    lines included."""
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "churnops_alerts_probe.py").write_text(PROBE_DAG)
    database = tmp_path / "airflow.db"  # a copy: this run's DAG stays out of the session's DB
    # Copied by SQLite's own backup, never as a file: closing a descriptor of the live DB
    # that SQLite did not open drops every POSIX lock this process holds on it, and the
    # next `airflow` process then deletes the WAL under this process's open connections
    # (seen in CI: a later dag.test() in the same worker lost its writes and spun forever).
    with (
        contextlib.closing(sqlite3.connect(airflow_db / "airflow.db")) as source,
        contextlib.closing(sqlite3.connect(database)) as target,
    ):
        source.backup(target)
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
            f"http://127.0.0.1:{_closed_port()}/T0/probe-secret-path?token=probe-token",
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
    output = result.stdout + result.stderr
    assert "could not be delivered through connection 'churnops_dead'" in output
    assert "Tenacity will retry" in output  # the hook's own line, with the URL in it
    assert "probe-secret-path" not in output and "probe-token" not in output
