"""What an alert says, as a pure function of the event: a task that failed for good, or a
retraining trigger that fired. How it travels (webhook, e-mail, log line) is
``churnops.orchestration.alerts``."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

AlertKind = Literal["task_failed", "retrain_requested", "alert"]

MESSAGE_LIMIT = 4_000  # characters of an exception's text kept in an alert


@dataclass(frozen=True)
class Alert:
    """What an alert says, whatever carries it."""

    title: str
    message: str
    kind: AlertKind = "alert"
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

    def email_html(self) -> str:
        """The body of an e-mail (Airflow's SMTP notifier sends HTML): the text and where it
        happened, preformatted so that tracebacks and reasons keep their lines."""
        details = [
            f"{label}: {value}"
            for label, value in (
                ("DAG", self.dag_id),
                ("Run", self.run_id),
                ("Task", self.task_id),
                ("Try", self.try_number),
                ("Day", self.as_of_date),
            )
            if value
        ]
        plain = "\n\n".join(part for part in (self.text, "\n".join(details)) if part)
        return f"<pre>{html.escape(plain)}</pre>"

    def one_line(self) -> str:
        """The alert in one log line (title, then the message or the reasons)."""
        text = f"{self.title}: {self.message}" if self.message else self.title
        if self.reasons and not self.message:
            text += ": " + "; ".join(self.reasons)
        return re.sub(r"\s*\n\s*", " | ", text.strip())


def build_alert(
    *,
    kind: AlertKind | None = None,
    title: str | None = None,
    message: str | None = None,
    reasons: Sequence[str] = (),
    as_of_date: dt.date | str | None = None,
    exception: object = None,
    dag_id: str | None = None,
    task_id: str | None = None,
    run_id: str | None = None,
    try_number: int | None = None,
    log_url: str | None = None,
) -> Alert:
    """The alert for an event; ``title`` and ``message`` override the defaults.

    A failure (an exception, or ``kind="task_failed"``) is titled "churnops: <dag>.<task>
    failed" and says the exception; a fired trigger ("retrain_requested") names its day and
    lists its reasons.
    """
    reasons = tuple(str(reason) for reason in reasons)
    if kind is None:
        kind = "task_failed" if exception is not None else "alert"
    where = ".".join(str(part) for part in (dag_id, task_id) if part) or "a churnops task"
    if kind == "retrain_requested":
        default_title = f"churnops: retraining requested for {as_of_date}"
        default_message = (
            "The retraining policy fired: " + "; ".join(reasons)
            if reasons
            else "The retraining policy fired."
        )
    elif kind == "task_failed":
        default_title = f"churnops: {where} failed"
        default_message = describe_exception(exception) if exception is not None else ""
    else:
        default_title = f"churnops: {where}"
        default_message = describe_exception(exception) if exception is not None else ""
    return Alert(
        title=default_title if title is None else title,
        message=default_message if message is None else message,
        kind=kind,
        dag_id=str(dag_id) if dag_id else None,
        run_id=str(run_id) if run_id else None,
        task_id=str(task_id) if task_id else None,
        try_number=try_number,
        log_url=str(log_url) if log_url else None,
        as_of_date=str(as_of_date) if as_of_date else None,
        reasons=reasons,
    )


def describe_exception(exception: object) -> str:
    """``Type: text`` of an exception, cut to ``MESSAGE_LIMIT`` characters."""
    text = (
        f"{type(exception).__name__}: {exception}"
        if isinstance(exception, BaseException)
        else str(exception)
    )
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
