"""The registry's retention policy as a pure decision: which versions are archived now."""

from __future__ import annotations

import datetime as dt

import pytest

from churnops.registry.retention import VersionFacts, versions_to_archive

pytestmark = pytest.mark.unit

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)


def registered(version: str, days_ago: float, *aliases: str, lifecycle: str | None = None):
    return VersionFacts(version, NOW - dt.timedelta(days=days_ago), tuple(aliases), lifecycle)


def test_only_old_versions_without_an_alias_are_archived_each_with_its_reason() -> None:
    versions = [
        registered("1", 400, "previous_champion", lifecycle="retired"),  # rollback target
        registered("2", 200, "champion", lifecycle="production"),
        registered("3", 120),  # kept, never tagged: development
        registered("4", 90, lifecycle="retired"),  # rolled back
        registered("5", 60, lifecycle="archived"),  # already
        registered("6", 29.9),  # kept, too young
        registered("7", 10, "challenger", lifecycle="staging"),  # in its rollout
    ]
    archived = versions_to_archive(versions, NOW, archive_after_days=30)
    assert [version for version, _ in archived] == ["3", "4"]
    assert archived[0][1] == "no alias, development, registered 120 days ago (archived after 30)"
    assert archived[1][1].startswith("no alias, retired, registered 90 days ago")


def test_the_day_it_comes_of_age_counts_and_an_alias_always_protects() -> None:
    assert versions_to_archive([registered("3", 30)], NOW, 30) == [
        ("3", "no alias, development, registered 30 days ago (archived after 30)")
    ]
    assert versions_to_archive([registered("3", 3000, "champion")], NOW, 1) == []
    assert versions_to_archive([], NOW, 1) == []
