"""Alerts: failed tasks and fired retraining triggers, announced through an Airflow connection.

The connection named by ``settings.alerts.conn_id`` (``churnops_alerts``; env
``CHURNOPS_ALERT_CONN_ID``) decides where an alert goes:

- ``http`` / ``https``: a JSON POST to a webhook (Slack, Teams, Mattermost, a pager, ...).
  The URL is ``extra["url"]`` when set; else the host when it holds a whole URL; else it is
  built the way Airflow's HTTP connections are: ``<schema or conn type>://<host>[:<port>]``
  plus ``extra["endpoint"]``. In the URI form a path lands in the connection's schema field
  and is put back here, so ``AIRFLOW_CONN_CHURNOPS_ALERTS=https://hooks.example.com/T0/B0/x``
  posts to exactly that URL. A login and password become basic auth, ``extra["headers"]``
  extra headers. Query strings do not survive the URI form (Airflow reads them as extras):
  put such URLs in ``extra["url"]`` (JSON form).
- ``smtp`` / ``email``: an e-mail through ``smtplib`` to ``settings.alerts.email_to``
  (``CHURNOPS_ALERT_EMAIL_TO``) or ``extra["to"]``, with the SMTP provider's extras:
  ``from_email``, ``disable_ssl``, ``disable_tls``, ``timeout``.

Without that connection, one WARNING log line carries the alert and says how to configure
one. Sending never fails the task it reports on: any error is logged and swallowed.

The connection is looked up with the Task SDK (``airflow.sdk.Connection.get``): inside a
task it asks the worker's environment (``AIRFLOW_CONN_*``) and then the API server, which
reads the metadata DB; elsewhere (CLI, tests) only the environment and configured secrets
backends.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import smtplib
import ssl
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseNotifier

from churnops.settings import load_settings

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

WEBHOOK_TYPES = ("http", "https")
EMAIL_TYPES = ("smtp", "email")
MESSAGE_LIMIT = 4_000  # characters of an exception's text kept in an alert


@dataclass(frozen=True)
class Alert:
    """What an alert says, whatever carries it."""

    title: str
    message: str
    kind: str = "alert"  # task_failed | retrain_requested | alert
    dag_id: str | None = None
    run_id: str | None = None
    task_id: str | None = None
    try_number: int | None = None
    log_url: str | None = None
    as_of_date: str | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def text(self) -> str:
        """Title and message as one plain text (chat webhooks show the ``text`` key)."""
        lines = [self.title, self.message]
        lines += [f"- {reason}" for reason in self.reasons]
        if self.log_url:
            lines.append(f"Log: {self.log_url}")
        return "\n".join(line for line in lines if line)

    def payload(self) -> dict[str, Any]:
        """The JSON body of a webhook call."""
        return {
            "source": "churnops",
            "kind": self.kind,
            "title": self.title,
            "message": self.message,
            "text": self.text,
            "dag_id": self.dag_id,
            "run_id": self.run_id,
            "task_id": self.task_id,
            "try_number": self.try_number,
            "log_url": self.log_url,
            "as_of_date": self.as_of_date,
            "reasons": list(self.reasons),
        }


def alert_from_context(
    context: Mapping[str, Any],
    *,
    title: str | None = None,
    message: str | None = None,
    reasons: Sequence[str] = (),
    kind: str | None = None,
    as_of_date: dt.date | str | None = None,
) -> Alert:
    """An alert about the task or run in ``context`` (a task's Airflow context, or any dict
    with some of ``dag_id``, ``run_id``, ``task_id``, ``exception``)."""
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    task = context.get("task")
    dag_id = _first(
        getattr(ti, "dag_id", None), getattr(dag, "dag_id", None), context.get("dag_id")
    )
    task_id = _first(
        getattr(ti, "task_id", None), getattr(task, "task_id", None), context.get("task_id")
    )
    run_id = _first(context.get("run_id"), getattr(ti, "run_id", None))
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # the property reads the config; never let it spoil the alert
        log_url = None
    exception = context.get("exception")
    failed = exception is not None or kind == "task_failed"
    if title is None:
        where = ".".join(str(part) for part in (dag_id, task_id) if part) or "a churnops task"
        title = f"churnops: {where} failed" if failed else f"churnops: {where}"
    if message is None:
        message = _describe(exception) if exception is not None else ""
    try_number = getattr(ti, "try_number", None)
    return Alert(
        title=title,
        message=message,
        kind=kind or ("task_failed" if failed else "alert"),
        dag_id=str(dag_id) if dag_id else None,
        run_id=str(run_id) if run_id else None,
        task_id=str(task_id) if task_id else None,
        try_number=try_number if isinstance(try_number, int) else None,
        log_url=str(log_url) if log_url else None,
        as_of_date=str(as_of_date) if as_of_date else None,
        reasons=tuple(str(reason) for reason in reasons),
    )


class ChurnopsNotifier(BaseNotifier):
    """Sends an ``Alert`` through the churnops alert connection; never raises.

    Use it as a task's ``on_failure_callback`` (``failure_notifier()``), or call it with a
    context: ``ChurnopsNotifier(title=..., message=...)(context)``. The title defaults to
    "churnops: <dag>.<task> failed" when the context carries an exception, and the message
    to that exception.
    """

    # Nothing is templated: titles and reasons are built in Python and may contain braces.
    template_fields = ()

    def __init__(
        self,
        *,
        title: str | None = None,
        message: str | None = None,
        reasons: Sequence[str] = (),
        kind: str | None = None,
        as_of_date: dt.date | str | None = None,
        conn_id: str | None = None,
        email_to: str | None = None,
    ) -> None:
        super().__init__()
        self.title = title
        self.message = message
        self.reasons = tuple(reasons)
        self.kind = kind
        self.as_of_date = as_of_date
        self.conn_id = conn_id
        self.email_to = email_to
        self.delivered: bool | None = None  # the last call's outcome (for callers and tests)

    def notify(self, context: Context) -> None:
        try:
            alert = alert_from_context(
                context,
                title=self.title,
                message=self.message,
                reasons=self.reasons,
                kind=self.kind,
                as_of_date=self.as_of_date,
            )
            settings = load_settings().alerts
            self.delivered = send_alert(
                alert,
                conn_id=self.conn_id or settings.conn_id,
                email_to=self.email_to if self.email_to is not None else settings.email_to,
            )
        except Exception:
            log.exception("churnops alert could not be prepared; the task is not affected")
            self.delivered = False


def failure_notifier() -> ChurnopsNotifier:
    """For ``default_args["on_failure_callback"]``: announces a task that failed for good
    (after its retries), with the exception and the log's URL."""
    return ChurnopsNotifier(kind="task_failed")


def notify_trigger(
    reasons: Sequence[str],
    as_of_date: dt.date | str,
    context: Mapping[str, Any] | None = None,
) -> bool:
    """Announce a fired retraining trigger; True when the alert reached its destination.

    Inside a task the run's context is found by itself; pass ``context`` elsewhere.
    """
    if context is None:
        context = _current_context()
    reasons = [str(reason) for reason in reasons]
    notifier = ChurnopsNotifier(
        title=f"churnops: retraining requested for {as_of_date}",
        message="The retraining policy fired: " + "; ".join(reasons)
        if reasons
        else "The retraining policy fired.",
        reasons=reasons,
        kind="retrain_requested",
        as_of_date=as_of_date,
    )
    notifier(dict(context))
    return bool(notifier.delivered)


def send_alert(alert: Alert, *, conn_id: str, email_to: str = "") -> bool:
    """Deliver ``alert`` through connection ``conn_id``; True when it went out. Never raises."""
    try:
        conn = lookup_connection(conn_id)
    except Exception as error:
        log.error(
            "churnops alert not sent: the Airflow connection %r could not be read (%s): %s",
            conn_id,
            error,
            _one_line(alert),
        )
        return False
    if conn is None:
        log.warning(
            "churnops alert not sent (alerts are not configured: no Airflow connection %r; set "
            "%s to a webhook URL such as 'https://hooks.example.com/services/...', or to an smtp "
            "connection, or add it in the Airflow UI under Admin > Connections): %s",
            conn_id,
            _env_var(conn_id),
            _one_line(alert),
        )
        return False
    conn_type = (conn.conn_type or "").lower()
    try:
        if conn_type in WEBHOOK_TYPES:
            url = webhook_url(conn)
            post_webhook(url, alert.payload(), conn)
            log.info("churnops alert sent to webhook %s: %s", _safe_origin(url), alert.title)
        elif conn_type in EMAIL_TYPES:
            recipients = _recipients(email_to or str(conn.extra_dejson.get("to") or ""))
            if not recipients:
                log.error(
                    "churnops alert not sent: connection %r is an e-mail connection but no "
                    "recipient is set (CHURNOPS_ALERT_EMAIL_TO, or the connection's extra "
                    '"to"): %s',
                    conn_id,
                    _one_line(alert),
                )
                return False
            send_email(build_email(alert, conn, recipients), conn)
            log.info("churnops alert e-mailed to %s: %s", ", ".join(recipients), alert.title)
        else:
            log.error(
                "churnops alert not sent: connection %r has type %r; use http, https or smtp: %s",
                conn_id,
                conn.conn_type,
                _one_line(alert),
            )
            return False
    except Exception as error:
        log.error(
            "churnops alert could not be delivered through connection %r (%s: %s): %s",
            conn_id,
            type(error).__name__,
            error,
            _one_line(alert),
        )
        return False
    return True


def lookup_connection(conn_id: str) -> Connection | None:
    """The connection through the Task SDK, or None when it is not defined anywhere."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def webhook_url(conn: Connection) -> str:
    """The URL a webhook connection posts to (see the module's docstring)."""
    extra = conn.extra_dejson
    if extra.get("url"):
        return str(extra["url"])
    host = (conn.host or "").strip()
    if not host:
        raise ValueError(f"connection {conn.conn_id!r} has no host and no extra url")
    schema = (conn.schema or "").strip()
    if "://" in host:
        base = host.rstrip("/")
        path = schema
    else:
        protocol = schema if schema in WEBHOOK_TYPES else (conn.conn_type or "http")
        base = f"{protocol}://{host}" + (f":{conn.port}" if conn.port else "")
        path = "" if schema in WEBHOOK_TYPES else schema
    endpoint = str(extra.get("endpoint") or "")
    for part in (path, endpoint):
        if part:
            base = f"{base.rstrip('/')}/{part.lstrip('/')}"
    return base


def post_webhook(
    url: str, payload: Mapping[str, Any], conn: Connection, timeout: float | None = None
) -> int:
    """POST ``payload`` as JSON; the response's status (an error status raises)."""
    if urlsplit(url).scheme not in WEBHOOK_TYPES:
        raise ValueError("the webhook URL must start with http:// or https://")
    extra = conn.extra_dejson
    headers = {"Content-Type": "application/json", "User-Agent": "churnops-alerts"}
    if conn.login:
        token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    headers.update({str(k): str(v) for k, v in dict(extra.get("headers") or {}).items()})
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers=headers, method="POST"
    )
    timeout = timeout if timeout is not None else float(extra.get("timeout") or 10)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # scheme checked above
        return int(response.status)


def build_email(alert: Alert, conn: Connection, recipients: Sequence[str]) -> EmailMessage:
    """The alert as a plain-text e-mail."""
    message = EmailMessage()
    message["Subject"] = alert.title
    message["From"] = str(conn.extra_dejson.get("from_email") or conn.login or "churnops@localhost")
    message["To"] = ", ".join(recipients)
    details = [
        f"{label}: {value}"
        for label, value in (
            ("DAG", alert.dag_id),
            ("Run", alert.run_id),
            ("Task", alert.task_id),
            ("Try", alert.try_number),
            ("Day", alert.as_of_date),
        )
        if value
    ]
    message.set_content("\n\n".join(part for part in (alert.text, "\n".join(details)) if part))
    return message


def send_email(message: EmailMessage, conn: Connection) -> None:
    """Send through the connection's SMTP server, as Airflow's SMTP provider reads it:
    SSL unless ``disable_ssl``, else STARTTLS unless ``disable_tls``; login when set."""
    extra = conn.extra_dejson
    use_ssl = not _flag(extra.get("disable_ssl"))
    starttls = not use_ssl and not _flag(extra.get("disable_tls"))
    timeout = float(extra.get("timeout") or 30)
    host = conn.host or "localhost"
    client: smtplib.SMTP
    if use_ssl:
        client = smtplib.SMTP_SSL(
            host, conn.port or 465, timeout=timeout, context=ssl.create_default_context()
        )
    else:
        client = smtplib.SMTP(host, conn.port or (587 if starttls else 25), timeout=timeout)
    with client:
        if starttls:
            client.starttls(context=ssl.create_default_context())
        if conn.login:
            client.login(conn.login, conn.password or "")
        client.send_message(message)


def _current_context() -> Mapping[str, Any]:
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:  # not inside a running task
        return {}


def _describe(exception: object) -> str:
    text = (
        f"{type(exception).__name__}: {exception}"
        if isinstance(exception, BaseException)
        else str(exception)
    )
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _first(*values: Any) -> Any:
    return next((value for value in values if value), None)


def _one_line(alert: Alert) -> str:
    text = f"{alert.title}: {alert.message}" if alert.message else alert.title
    if alert.reasons and not alert.message:
        text += ": " + "; ".join(alert.reasons)
    return re.sub(r"\s*\n\s*", " | ", text.strip())


def _env_var(conn_id: str) -> str:
    return "AIRFLOW_CONN_" + conn_id.upper()


def _safe_origin(url: str) -> str:
    """Scheme and host only: a webhook's path is often its secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def _recipients(raw: str) -> list[str]:
    return [address for address in re.split(r"\s*[,;]\s*", raw.strip()) if address]


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)
