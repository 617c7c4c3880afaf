"""What an alert says: a pure function of the event."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.alert_text import MESSAGE_LIMIT, build_alert

pytestmark = pytest.mark.unit

WHERE = {
    "dag_id": "churn_nightly",
    "task_id": "score",
    "run_id": "scheduled__2025-03-02T02:30:00+00:00",
}


def test_a_failure_names_the_task_and_says_the_exception() -> None:
    alert = build_alert(exception=ValueError("champion model not found\nsecond line"), **WHERE)
    assert alert.kind == "task_failed"
    assert alert.title == "churnops: churn_nightly.score failed"
    assert alert.message == "ValueError: champion model not found\nsecond line"
    assert alert.one_line() == (
        "churnops: churn_nightly.score failed: ValueError: champion model not found | second line"
    )


def test_a_failure_without_a_known_task_still_has_a_title() -> None:
    alert = build_alert(kind="task_failed")
    assert alert.title == "churnops: a churnops task failed" and alert.message == ""


def test_a_fired_trigger_names_its_day_and_lists_its_reasons() -> None:
    alert = build_alert(
        kind="retrain_requested",
        reasons=["drift on 4 features", "AUC 0.76"],
        as_of_date=dt.date(2025, 3, 2),
    )
    assert alert.title == "churnops: retraining requested for 2025-03-02"
    assert alert.message == "The retraining policy fired: drift on 4 features; AUC 0.76"
    assert alert.as_of_date == "2025-03-02"
    assert alert.text.splitlines()[-2:] == ["- drift on 4 features", "- AUC 0.76"]
    assert build_alert(kind="retrain_requested", as_of_date="2025-03-02").message == (
        "The retraining policy fired."
    )


def test_title_and_message_override_the_defaults() -> None:
    alert = build_alert(title="hello", message="world", exception=RuntimeError("x"))
    assert (alert.title, alert.message, alert.kind) == ("hello", "world", "task_failed")
    assert build_alert(title="t").kind == "alert"


def test_a_long_exception_is_cut() -> None:
    alert = build_alert(exception=RuntimeError("x" * 10_000), **WHERE)
    assert len(alert.message) == MESSAGE_LIMIT and alert.message.endswith("…")


def test_payload_carries_every_field() -> None:
    alert = build_alert(exception=ValueError("v"), try_number=2, log_url="http://l/og", **WHERE)
    payload = alert.payload()
    assert payload == {
        "source": "churnops",
        "kind": "task_failed",
        "title": "churnops: churn_nightly.score failed",
        "message": "ValueError: v",
        "text": "churnops: churn_nightly.score failed\nValueError: v\nLog: http://l/og",
        "dag_id": "churn_nightly",
        "run_id": WHERE["run_id"],
        "task_id": "score",
        "try_number": 2,
        "log_url": "http://l/og",
        "as_of_date": None,
        "reasons": [],
    }


def test_email_body_holds_the_text_and_where_escaped() -> None:
    alert = build_alert(exception=RuntimeError("<b>bad</b> & worse"), reasons=["r1"], **WHERE)
    body = alert.email_html()
    assert body.startswith("<pre>") and body.endswith("</pre>")
    assert "- r1" in body and "DAG: churn_nightly" in body and "Task: score" in body
    assert "&lt;b&gt;bad&lt;/b&gt; &amp; worse" in body and "<b>" not in body
