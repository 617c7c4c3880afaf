"""The registry's retention policy: a version nobody needs any more is archived.

Every retrain registers a version, and most are kept (not better) or wait for a running
rollout: without a policy they stay ``development`` for good and crowd the registry's
list. After each retrain, a version that holds no alias (not the champion, the
challenger in its rollout, nor the rollback target) and was registered at least
``CHURNOPS_REGISTRY_ARCHIVE_AFTER_DAYS`` ago is tagged ``lifecycle=archived`` with the
reason. The previous champion is archived by its rollout instead (``keep_previous_days``
after full). Nothing is deleted: a version that served predictions must stay loadable
for audits, and one that never did costs a few kilobytes of model.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from churnops.registry.aliases import (
    ARCHIVED,
    LIFECYCLE_TAG,
    current_aliases,
    registry_lock,
    utc_stamp,
)
from churnops.registry.tracking import mlflow_client
from churnops.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VersionFacts:
    """What the policy looks at for one registered version."""

    version: str
    registered_at: dt.datetime  # UTC
    aliases: tuple[str, ...]
    lifecycle: str | None  # None: development (registered, never tagged)


def versions_to_archive(
    versions: Iterable[VersionFacts], now: dt.datetime, archive_after_days: int
) -> list[tuple[str, str]]:
    """(version, reason) of each version the policy archives now: no alias, not archived
    yet, registered ``archive_after_days`` or more ago."""
    chosen = []
    for facts in versions:
        if facts.aliases or facts.lifecycle == ARCHIVED:
            continue
        age = (now - facts.registered_at).days
        if age < archive_after_days:
            continue
        chosen.append(
            (
                facts.version,
                f"no alias, {facts.lifecycle or 'development'}, registered {age} days ago "
                f"(archived after {archive_after_days})",
            )
        )
    return chosen


def archive_stale_versions(
    settings: Settings, actor: str, now: dt.datetime | None = None
) -> list[tuple[str, str]]:
    """Apply :func:`versions_to_archive` to the registered model (under the registry's
    lock: an alias moved meanwhile cannot be missed); returns what it archived."""
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    now = now or dt.datetime.now(dt.UTC)
    with registry_lock(settings):
        aliases: dict[str, list[str]] = {}
        for alias, version in current_aliases(settings, client).items():
            aliases.setdefault(version, []).append(alias)
        facts = [
            VersionFacts(
                version=str(v.version),
                registered_at=dt.datetime.fromtimestamp(v.creation_timestamp / 1000, dt.UTC),
                aliases=tuple(aliases.get(str(v.version), ())),
                lifecycle=(v.tags or {}).get(LIFECYCLE_TAG),
            )
            for v in client.search_model_versions(f"name = '{name}'")
        ]
        archived = versions_to_archive(facts, now, settings.mlflow.archive_after_days)
        for version, reason in archived:
            client.set_model_version_tag(name, version, LIFECYCLE_TAG, ARCHIVED)
            client.set_model_version_tag(name, version, "archived_at", f"{utc_stamp()}Z")
            client.set_model_version_tag(name, version, "archived_reason", f"{reason} by {actor}")
            log.info("%s v%s archived: %s", name, version, reason)
    return archived
