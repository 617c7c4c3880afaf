"""The service's circuit breaker (a pure state machine on an injected clock) and its API
keys (salted hashes on disk, constant-time checks, revocation seen without a restart)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from churnops.serve.keys import KeyChecker, KeyFile, KeyFileError
from churnops.serve.protection import CLOSED, HALF_OPEN, OPEN, CircuitBreaker

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker("store", 0.05, min_calls=20, reset_seconds=30, clock=clock)


def test_breaker_stays_closed_below_the_error_rate_and_below_min_calls() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(19):
        breaker.record(False)  # all failed, but fewer than min_calls
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record(False)
    assert breaker.state == OPEN


def test_breaker_trips_at_five_percent_and_resets_after_thirty_seconds() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    for _ in range(95):
        breaker.record(True)
    for _ in range(4):
        breaker.record(False)
    assert breaker.state == CLOSED  # 4 / 99 < 5 %
    breaker.record(False)
    assert breaker.state == OPEN and breaker.trips == 1  # 5 / 100
    assert not breaker.allow()
    clock.now = 29.9
    assert not breaker.allow() and breaker.retry_after == pytest.approx(0.1)
    clock.now = 30.0
    assert breaker.allow() and breaker.state == HALF_OPEN  # one trial call
    assert not breaker.allow()  # and only one
    breaker.record(False)
    assert breaker.state == OPEN and breaker.trips == 2
    clock.now = 60.0
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == CLOSED and breaker.allow()


def test_breaker_forgets_calls_older_than_its_window() -> None:
    clock = Clock()
    breaker = CircuitBreaker("model", 0.05, 20, 30, window_seconds=60, clock=clock)
    for _ in range(4):
        breaker.record(False)
    clock.now = 61
    for _ in range(30):
        breaker.record(True)
    breaker.record(False)  # 1 / 31 in the window: the old failures are gone
    assert breaker.state == CLOSED


def test_keys_are_stored_as_salted_hashes_and_checked(tmp_path: Path) -> None:
    path = tmp_path / "serve" / "keys.json"
    keys = KeyFile(path)
    key, record = keys.create("retention app")
    other, _ = keys.create("agent desk")
    stored = path.read_text()
    for secret in (key, other, key.split("_", 2)[2]):
        assert secret not in stored
    assert json.loads(stored)["keys"][0]["label"] == "retention app"
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    checker = KeyChecker(path, env_key="from-env")
    assert checker.check(key) == record.key_id
    assert checker.check(key) == record.key_id  # remembered
    assert checker.check("from-env") == "env"
    for wrong in (
        None,
        "",
        "from-env2",
        key + "x",
        key.replace(record.key_id, "00000000"),
        "cok__",
    ):
        assert checker.check(wrong) is None, wrong
    assert checker.active == 3

    keys.revoke(record.key_id)
    assert checker.check(key) is None  # the file changed: re-read, no restart
    assert checker.check(other) is not None
    with pytest.raises(KeyFileError, match="no active key"):
        keys.revoke(record.key_id)


def test_an_unreadable_keys_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{broken")
    with pytest.raises(KeyFileError, match=str(path)):
        KeyFile(path).records()
