"""An error as one short line."""

from __future__ import annotations

import pytest

from churnops.errors import one_line

pytestmark = pytest.mark.unit


def test_whitespace_collapses_and_long_text_is_cut_with_an_ellipsis() -> None:
    error = OSError("no route\n   to host\n" + "x" * 400)
    line = one_line(error, 50)
    assert "\n" not in line and line.startswith("no route to host x")
    assert len(line) == 50 and line.endswith("...")
    assert one_line(ValueError("short")) == "short"


def test_the_class_name_leads_when_asked_and_not_already_there() -> None:
    assert one_line(TimeoutError("timed out"), with_type=True) == "TimeoutError: timed out"
    assert one_line(KeyError(), with_type=True) == "KeyError"
    assert one_line(RuntimeError("RuntimeError inside"), with_type=True) == "RuntimeError inside"
