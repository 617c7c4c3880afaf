"""Who is champion: MLflow registered-model aliases, moved under a lock, every move audited.

Aliases (MLflow 3; stages are deprecated):

- ``champion``: the version nightly scoring uses (``models:/<name>@champion``);
- ``challenger``: the latest version that was kept, not promoted (shadow scoring, review);
- ``previous_champion``: the champion before the current one (the rollback target).

The lifecycle of a version is a tag, ``lifecycle`` (no deprecated MLflow stages):
``development`` (registered, no alias; no tag yet) -> ``staging`` (in a rollout: shadow,
canary, ramp) -> ``production`` (champion) -> ``retired`` (previous champion, or rolled
back) -> ``archived`` (no alias any more, kept for the record). Nothing here deletes a
version: a version that served predictions stays in the registry for good.

An alias names one version at a time, so there can never be two champions. What could
still go wrong is two promotions interleaving their read-modify-write (both reading
champion = v3, both moving it to previous_champion): every move therefore runs under an
exclusive file lock in the state dir (``fcntl.flock``). The lock serialises the processes
of one host (the local profile, or one Airflow worker); several hosts need the lock on
shared storage or a single retrain pool.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from churnops.registry.audit import AliasMove, record_alias_moves
from churnops.registry.tracking import RegistryError, mlflow_client, registry_lock_path
from churnops.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)
LIFECYCLE_TAG = "lifecycle"
STAGING, PRODUCTION, RETIRED, ARCHIVED = "staging", "production", "retired", "archived"


class _Unset:
    """No expectation about the current champion."""


UNSET = _Unset()


class NoRollbackTarget(RegistryError):
    """Rollback asked for, but no version holds the previous_champion alias."""


class StaleDecision(RegistryError):
    """The champion changed between a decision and its promotion: decide again."""


class UnknownVersion(RegistryError):
    """A version asked for by number that the registry does not hold."""


def _require_version(client: MlflowClient, name: str, version: str) -> None:
    """Raise :class:`UnknownVersion` naming the versions there are (a user typed the
    number) instead of MLflow's RESOURCE_DOES_NOT_EXIST traceback."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, version)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        held = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
        there = (
            f"its versions are {', '.join(f'v{v}' for v in held)}"
            if held
            else "it has no versions yet: train one first (`churnops bootstrap`, `churnops train`)"
        )
        raise UnknownVersion(f"'{name}' has no version {version}: {there}") from None


@contextlib.contextmanager
def registry_lock(settings: Settings) -> Iterator[None]:
    """Exclusive lock around alias read-modify-writes (blocks until it is free)."""
    with exclusive_file_lock(registry_lock_path(settings)):
        yield


@contextlib.contextmanager
def exclusive_file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing), held for the block: it
    serialises this host's processes; it blocks until the lock is free."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def current_aliases(settings: Settings, client: MlflowClient | None = None) -> dict[str, str]:
    """alias -> version of the registered model ({} when it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    client = client or mlflow_client(settings)
    try:
        model = client.get_registered_model(settings.mlflow.registered_model_name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in model.aliases.items()}


def promote(
    settings: Settings,
    version: str | int,
    reason: str,
    actor: str,
    *,
    run_id: str | None = None,
    expected_champion: str | None | _Unset = UNSET,
) -> list[AliasMove]:
    """Make ``version`` the champion; the old champion becomes previous_champion.

    Clears ``challenger`` when it pointed at ``version``. With ``expected_champion`` (the
    champion a decision was made against; None for "no champion"), raises
    :class:`StaleDecision` if another promotion got there first. Returns the moves made
    (none when ``version`` already is the champion).
    """
    version = str(version)
    name = settings.mlflow.registered_model_name
    client = mlflow_client(settings)
    with registry_lock(settings):
        _require_version(client, name, version)
        aliases = current_aliases(settings, client)
        champion = aliases.get(CHAMPION)
        if not isinstance(expected_champion, _Unset) and champion != expected_champion:
            raise StaleDecision(
                f"the decision to promote v{version} was made against champion "
                f"{_v(expected_champion)}, but the champion is now {_v(champion)}: decide again"
            )
        if champion == version:
            log.info("v%s already is the champion", version)
            return []
        moves = []
        # Order matters for a crash in between: the rollback target is saved before the
        # champion moves, and there is a champion at every step.
        if champion is not None:
            moves.append(
                _set(
                    client,
                    settings,
                    PREVIOUS_CHAMPION,
                    champion,
                    aliases,
                    "promote",
                    reason,
                    actor,
                    run_id,
                )
            )
        moves.append(
            _set(client, settings, CHAMPION, version, aliases, "promote", reason, actor, run_id)
        )
        if aliases.get(CHALLENGER) == version:
            moves.append(
                _delete(client, settings, CHALLENGER, aliases, "promote", reason, actor, run_id)
            )
        client.set_model_version_tag(name, version, LIFECYCLE_TAG, PRODUCTION)
        if champion is not None:
            client.set_model_version_tag(name, champion, LIFECYCLE_TAG, RETIRED)
        _record(client, settings, moves)
    return moves


def set_challenger(
    settings: Settings, version: str | int, reason: str, actor: str, *, run_id: str | None = None
) -> list[AliasMove]:
    """Point ``challenger`` at ``version`` (a kept, not promoted, model)."""
    version = str(version)
    client = mlflow_client(settings)
    with registry_lock(settings):
        _require_version(client, settings.mlflow.registered_model_name, version)
        aliases = current_aliases(settings, client)
        if aliases.get(CHALLENGER) == version:
            return []
        if aliases.get(CHAMPION) == version:
            raise RegistryError(f"v{version} is the champion; it cannot also be the challenger")
        moves = [
            _set(
                client, settings, CHALLENGER, version, aliases, "challenger", reason, actor, run_id
            )
        ]
        _record(client, settings, moves)
    return moves


def rollback(settings: Settings, reason: str, actor: str) -> list[AliasMove]:
    """Give the champion alias back to previous_champion.

    The rolled-back version loses the alias (it stays in the registry, tagged); the
    previous_champion alias is removed, so a second rollback has no target until the
    next promotion. Raises :class:`NoRollbackTarget` when there is none.
    """
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    with registry_lock(settings):
        aliases = current_aliases(settings, client)
        target = aliases.get(PREVIOUS_CHAMPION)
        if target is None:
            raise NoRollbackTarget(
                f"cannot roll back {name!r}: no version holds the {PREVIOUS_CHAMPION!r} alias "
                f"(champion is {_v(aliases.get(CHAMPION))}). Roll back only follows a "
                "promotion; promote a version explicitly instead."
            )
        rolled_back = aliases.get(CHAMPION)
        moves = [_set(client, settings, CHAMPION, target, aliases, "rollback", reason, actor, None)]
        moves.append(
            _delete(client, settings, PREVIOUS_CHAMPION, aliases, "rollback", reason, actor, None)
        )
        if rolled_back is not None:
            client.set_model_version_tag(
                name,
                rolled_back,
                "rolled_back",
                f"{moves[0].event_at:%Y-%m-%dT%H:%M:%S}Z by {actor}: {reason}",
            )
            client.set_model_version_tag(name, rolled_back, LIFECYCLE_TAG, RETIRED)
        client.set_model_version_tag(name, target, LIFECYCLE_TAG, PRODUCTION)
        _record(client, settings, moves)
    return moves


def clear_challenger(
    settings: Settings, version: str, reason: str, actor: str, *, action: str = "rollback"
) -> list[AliasMove]:
    """Remove the ``challenger`` alias when it points at ``version`` (a rollout rolled
    back before full): from the next scoring nobody is served it, nor scores it in the
    shadow. The version is tagged ``retired`` with the reason."""
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    with registry_lock(settings):
        aliases = current_aliases(settings, client)
        moves = []
        if aliases.get(CHALLENGER) == str(version):
            moves.append(
                _delete(client, settings, CHALLENGER, aliases, action, reason, actor, None)
            )
        stamp = f"{utc_stamp()}Z by {actor}: {reason}"[:5000]
        client.set_model_version_tag(name, str(version), "rolled_back", stamp)
        client.set_model_version_tag(name, str(version), LIFECYCLE_TAG, RETIRED)
        _record(client, settings, moves)
    return moves


def archive_previous(settings: Settings, version: str, reason: str, actor: str) -> list[AliasMove]:
    """Archive ``version``: remove its ``previous_champion`` alias (if it still holds it)
    and tag it ``archived``. The version itself stays in the registry."""
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    with registry_lock(settings):
        aliases = current_aliases(settings, client)
        moves = []
        if aliases.get(PREVIOUS_CHAMPION) == str(version):
            moves.append(
                _delete(
                    client, settings, PREVIOUS_CHAMPION, aliases, "archive", reason, actor, None
                )
            )
        client.set_model_version_tag(name, str(version), LIFECYCLE_TAG, ARCHIVED)
        client.set_model_version_tag(name, str(version), "archived_at", f"{utc_stamp()}Z")
        _record(client, settings, moves)
    return moves


def set_lifecycle(settings: Settings, version: str, stage: str, **tags: str) -> None:
    """Tag ``version`` with its lifecycle stage (and any other tags given)."""
    client = mlflow_client(settings)
    name = settings.mlflow.registered_model_name
    for key, value in {LIFECYCLE_TAG: stage, **tags}.items():
        client.set_model_version_tag(name, str(version), key, str(value)[:5000])


def utc_stamp() -> str:
    from churnops.warehouse import utc_now

    return f"{utc_now():%Y-%m-%dT%H:%M:%S}"


def _set(
    client: MlflowClient,
    settings: Settings,
    alias: str,
    version: str,
    aliases: dict[str, str],
    action: str,
    reason: str,
    actor: str,
    run_id: str | None,
) -> AliasMove:
    name = settings.mlflow.registered_model_name
    client.set_registered_model_alias(name, alias, version)
    move = AliasMove(name, alias, aliases.get(alias), version, action, reason, actor, run_id)
    aliases[alias] = version
    return move


def _delete(
    client: MlflowClient,
    settings: Settings,
    alias: str,
    aliases: dict[str, str],
    action: str,
    reason: str,
    actor: str,
    run_id: str | None,
) -> AliasMove:
    name = settings.mlflow.registered_model_name
    client.delete_registered_model_alias(name, alias)
    move = AliasMove(name, alias, aliases.pop(alias, None), None, action, reason, actor, run_id)
    return move


def _record(client: MlflowClient, settings: Settings, moves: list[AliasMove]) -> None:
    """The audit trail: warehouse rows, and tags on the versions that gained or lost an alias."""
    name = settings.mlflow.registered_model_name
    for move in moves:
        stamp = f"{move.event_at:%Y-%m-%dT%H:%M:%S}Z"
        if move.to_version is not None:
            client.set_model_version_tag(name, move.to_version, f"{move.alias}_since", stamp)
            client.set_model_version_tag(
                name, move.to_version, f"{move.alias}_reason", f"{move.actor}: {move.reason}"[:5000]
            )
        if move.from_version is not None and move.from_version != move.to_version:
            client.set_model_version_tag(name, move.from_version, f"{move.alias}_until", stamp)
        log.info("registry %s: %s", name, move.describe())
    record_alias_moves(settings, moves)


def _v(version: object) -> str:
    return "nobody" if version is None else f"v{version}"
