"""Alerts through Airflow's own notifiers: failed tasks and fired retraining triggers.

What an alert says is ``churnops.alert_text``; this module only picks the notifier. The
connection named by ``settings.alerts.conn_id`` (``churnops_alerts``; env
``CHURNOPS_ALERT_CONN_ID``) decides where an alert goes, by its type:

- ``http`` / ``https``: ``HttpNotifier`` (apache-airflow-providers-http) POSTs the alert as
  JSON. The URL, basic auth (login, password), headers (the extras) and ``timeout`` are
  read the way every Airflow HTTP connection is read.
- ``smtp`` / ``email``: ``SmtpNotifier`` (apache-airflow-providers-smtp) e-mails it to
  ``settings.alerts.email_to`` (``CHURNOPS_ALERT_EMAIL_TO``) or the extra ``to``; SSL,
  STARTTLS, login, ``from_email`` and ``timeout`` as the SMTP provider reads them.

Without that connection, one WARNING line carries the alert and says how to add one. Sending
never fails the task it reports on: a failure is one ERROR line that names the destination
(scheme, host and port only: a webhook's path is often its secret) and what went wrong.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk import BaseNotifier

from churnops.alert_text import Alert, AlertKind, build_alert
from churnops.settings import load_settings

if TYPE_CHECKING:
    from airflow.sdk import Connection
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

WEBHOOK_TYPES = ("http", "https")
EMAIL_TYPES = ("smtp", "email")
# requests waits for ever without a timeout: a webhook that hangs would hold the task.
WEBHOOK_TIMEOUT_SECONDS = 10
DEFAULT_FROM_EMAIL = "churnops@localhost"


class ChurnopsNotifier(BaseNotifier):
    """Sends an alert through the churnops alert connection; never raises.

    Use it as a task's ``on_failure_callback`` (``failure_notifier()``), or call it with a
    context: ``ChurnopsNotifier(title=..., message=...)(context)``.
    """

    # Nothing is templated: titles and reasons are built in Python and may contain braces.
    template_fields = ()

    def __init__(
        self,
        *,
        title: str | None = None,
        message: str | None = None,
        reasons: Sequence[str] = (),
        kind: AlertKind | None = None,
        as_of_date: dt.date | str | None = None,
        conn_id: str | None = None,
        email_to: str | None = None,
    ) -> None:
        super().__init__()
        self.title = title
        self.message = message
        self.reasons = tuple(reasons)
        self.kind: AlertKind | None = kind
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
    notifier = ChurnopsNotifier(kind="retrain_requested", reasons=reasons, as_of_date=as_of_date)
    notifier(dict(context))
    return bool(notifier.delivered)


def alert_from_context(context: Mapping[str, Any], **event: Any) -> Alert:
    """The alert about the task or run in ``context`` (a task's Airflow context, or any dict
    with some of ``dag_id``, ``run_id``, ``task_id``, ``exception``); ``event`` is passed on
    to ``build_alert`` (title, message, reasons, kind, as_of_date)."""
    ti = context.get("ti") or context.get("task_instance")
    try:
        log_url = getattr(ti, "log_url", None)
    except Exception:  # the property reads the config; never let it spoil the alert
        log_url = None
    try_number = getattr(ti, "try_number", None)
    return build_alert(
        dag_id=_first(
            getattr(ti, "dag_id", None),
            getattr(context.get("dag"), "dag_id", None),
            context.get("dag_id"),
        ),
        task_id=_first(
            getattr(ti, "task_id", None),
            getattr(context.get("task"), "task_id", None),
            context.get("task_id"),
        ),
        run_id=_first(context.get("run_id"), getattr(ti, "run_id", None)),
        try_number=try_number if isinstance(try_number, int) else None,
        log_url=log_url,
        exception=context.get("exception"),
        **event,
    )


def send_alert(alert: Alert, *, conn_id: str, email_to: str = "") -> bool:
    """Deliver ``alert`` through connection ``conn_id``; True when it went out. Never raises."""
    try:
        conn = lookup_connection(conn_id)
    except Exception as error:
        log.error(
            "churnops alert not sent: the Airflow connection %r could not be read (%s): %s",
            conn_id,
            error,
            alert.one_line(),
        )
        return False
    if conn is None:
        log.warning(
            "churnops alert not sent (alerts are not configured: no Airflow connection %r; set "
            '%s to a webhook such as \'{"conn_type": "http", "host": '
            '"https://hooks.example.com/services/..."}\', or to an smtp connection, or add it '
            "in the Airflow UI under Admin > Connections): %s",
            conn_id,
            "AIRFLOW_CONN_" + conn_id.upper(),
            alert.one_line(),
        )
        return False
    conn_type = (conn.conn_type or "").lower()
    destination = f"its {conn_type} destination"  # until the notifier knows where that is
    secrets = [conn.password or ""]
    try:
        if conn_type in WEBHOOK_TYPES:
            notifier, destination, url_secrets = webhook_notifier(alert, conn)
            secrets += url_secrets
        elif conn_type in EMAIL_TYPES:
            recipients = email_to or str(conn.extra_dejson.get("to") or "")
            if not recipients.strip(" ,;"):
                log.error(
                    "churnops alert not sent: connection %r is an e-mail connection but no "
                    "recipient is set (CHURNOPS_ALERT_EMAIL_TO, or the connection's extra "
                    '"to"): %s',
                    conn_id,
                    alert.one_line(),
                )
                return False
            notifier, destination = email_notifier(alert, conn, recipients)
        else:
            log.error(
                "churnops alert not sent: connection %r has type %r; use http, https or smtp: %s",
                conn_id,
                conn.conn_type,
                alert.one_line(),
            )
            return False
        # notify(), not __call__: __call__ renders the fields as Jinja templates, and an
        # alert's text is final (a reason may hold braces).
        notifier.notify({})
    except Exception as error:
        log.error(
            "churnops alert could not be delivered through connection %r to %s (%s: %s): %s",
            conn_id,
            destination,
            type(error).__name__,
            _redact(str(error), secrets),
            alert.one_line(),
        )
        return False
    log.info("churnops alert sent to %s: %s", destination, alert.title)
    return True


def lookup_connection(conn_id: str) -> Connection | None:
    """The connection through the Task SDK, or None when it is not defined anywhere: inside
    a task the worker's environment (``AIRFLOW_CONN_*``), then the API server; elsewhere the
    environment and the configured secrets backends."""
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(conn_id)
    except AirflowNotFoundException:
        return None


def webhook_notifier(alert: Alert, conn: Connection) -> tuple[BaseNotifier, str, list[str]]:
    """``HttpNotifier`` posting the alert; where it posts (safe to log); the URL's secret
    parts (path, query) to keep out of every log line."""
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.sdk.log import mask_secret

    host = conn.host or ""
    protocol = urlsplit(host).scheme if "://" in host else (conn.schema or "http")
    if protocol not in WEBHOOK_TYPES or (conn.conn_type == "https" and protocol != "https"):
        # Airflow's HTTP connection takes the protocol from the schema field (a URI's path),
        # never from the type: a URI with a path cannot work, and an https URI without one
        # would be posted over plain http. Say how to write it instead.
        problem = (  # never the schema itself: in the URI form it holds the secret path
            f"the connection would post over 'http', not {conn.conn_type!r}"
            if protocol in WEBHOOK_TYPES
            else "the connection's schema field is not http or https"
        )
        raise ValueError(
            f"{problem} (Airflow's HTTP connection takes the protocol from the schema field, "
            "which the URI form fills with the path): put the webhook's whole URL in the "
            'host, e.g. {"conn_type": "http", "host": "https://hooks.example.com/services/..."}'
        )
    notifier = HttpNotifier(
        http_conn_id=conn.conn_id,
        json=alert.payload(),
        extra_options={}
        if "timeout" in conn.extra_dejson
        else {"timeout": WEBHOOK_TIMEOUT_SECONDS},
    )
    url = urlsplit(notifier.hook.url_from_endpoint(None))
    secrets = [part for part in (url.path.rstrip("/"), url.query) if part]
    # The hook logs the URL it calls (a refused connection is a WARNING with the whole URL):
    # its lines and the notifier's go through a logger that blanks the path and query.
    # mask_secret also has Airflow's task log blank them in other libraries' DEBUG lines.
    redacted = _RedactingLog(f"{__name__}.webhook", secrets)
    notifier._log = notifier.hook._log = redacted
    for secret in secrets:
        mask_secret(secret)
    origin = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "")
    return notifier, f"webhook {origin}", secrets


def email_notifier(alert: Alert, conn: Connection, recipients: str) -> tuple[BaseNotifier, str]:
    """``SmtpNotifier`` e-mailing the alert, and the SMTP server it goes through."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    notifier = SmtpNotifier(
        smtp_conn_id=conn.conn_id,
        to=recipients,
        from_email=conn.extra_dejson.get("from_email") or conn.login or DEFAULT_FROM_EMAIL,
        subject=alert.title,
        html_content=alert.email_html(),
    )
    port = f":{conn.port}" if conn.port else " (default port)"
    return notifier, f"smtp {conn.host}{port}"


class _RedactingLog:
    """Stands in for an Airflow hook's logger: the same lines, with ``secrets`` blanked."""

    LEVELS = ("debug", "info", "warning", "error", "exception", "critical")

    def __init__(self, name: str, secrets: Sequence[str]) -> None:
        self._logger = logging.getLogger(name)
        self._secrets = tuple(secrets)

    def __getattr__(self, level: str) -> Any:
        if level not in self.LEVELS:
            raise AttributeError(level)
        emit = getattr(self._logger, "error" if level == "exception" else level)

        def log(message: object, *args: object, **_: object) -> None:
            # Formatted here, and no exc_info: an exception's text and traceback hold the URL.
            text = str(message) % args if args else str(message)
            emit("%s", _redact(text, self._secrets))

        return log


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _current_context() -> Mapping[str, Any]:
    from airflow.sdk import get_current_context

    try:
        return get_current_context()
    except RuntimeError:  # not inside a running task
        return {}


def _first(*values: Any) -> Any:
    return next((value for value in values if value), None)
