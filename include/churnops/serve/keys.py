"""The service's API keys, kept only as salted hashes.

A key reads ``cok_<id>_<secret>``: the id finds its record, the secret is checked against
``scrypt(secret, salt)`` in constant time. The keys file (``CHURNOPS_SERVE_KEYS_FILE``,
default ``<state dir>/serve/api_keys.json``) holds id, label, salt, hash and dates; the
key itself is shown once, when it is created, and never written or logged anywhere.
``CHURNOPS_SERVE_API_KEY`` is one more accepted key (hashed in memory at start).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from churnops.settings import Settings

KEY_PREFIX = "cok"
# scrypt's cost: about 10 ms a check here would be the service's whole latency budget, so
# a verified key is remembered (by its hash) for the process's life; n=2**12 keeps the
# first check of each key around 5 ms.
_SCRYPT = {"n": 2**12, "r": 8, "p": 1, "dklen": 32}
_ENV_KEY_ID = "env"


class KeyFileError(ValueError):
    """The keys file cannot be read or written: one line naming it."""


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    label: str
    salt: str  # hex
    digest: str  # hex scrypt of the secret
    created_at: str
    revoked_at: str | None = None


def keys_path(settings: Settings) -> Path:
    return settings.serve.keys_file or settings.paths.state_dir / "serve" / "api_keys.json"


def _digest(secret: str, salt: bytes) -> str:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT).hex()


def _split(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def new_record(label: str) -> tuple[str, KeyRecord]:
    """A fresh key and its record (the key is returned once, never stored)."""
    key_id = secrets.token_hex(4)
    secret = secrets.token_urlsafe(24)
    salt = secrets.token_bytes(16)
    record = KeyRecord(
        key_id,
        label,
        salt.hex(),
        _digest(secret, salt),
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    return f"{KEY_PREFIX}_{key_id}_{secret}", record


class KeyFile:
    """The keys file: read, create, revoke (each write replaces the file atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def records(self) -> list[KeyRecord]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text())
            return [KeyRecord(**item) for item in data["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise KeyFileError(f"API keys file {self.path}: unreadable ({error})") from None

    def _write(self, records: list[KeyRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", dir=self.path.parent, prefix=".keys-", delete=False
        ) as handle:
            json.dump({"keys": [asdict(r) for r in records]}, handle, indent=1)
        os.chmod(handle.name, 0o600)
        os.replace(handle.name, self.path)

    def create(self, label: str) -> tuple[str, KeyRecord]:
        key, record = new_record(label)
        self._write([*self.records(), record])
        return key, record

    def revoke(self, key_id: str) -> KeyRecord:
        records = self.records()
        found = [r for r in records if r.key_id == key_id and r.revoked_at is None]
        if not found:
            raise KeyFileError(f"API keys file {self.path}: no active key with id {key_id!r}")
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        revoked = KeyRecord(**{**asdict(found[0]), "revoked_at": now})
        self._write([revoked if r.key_id == key_id else r for r in records])
        return revoked


class KeyChecker:
    """Checks presented keys against the file's active records and the environment's key.

    The file is read again when it changes (mtime), so a revoke takes effect without a
    restart; a verified key is remembered only as its SHA-256."""

    def __init__(self, path: Path, env_key: str = "") -> None:
        self.path = path
        self._mtime: float | None = None
        self._records: dict[str, KeyRecord] = {}
        self._verified: dict[str, str] = {}  # sha256(key) -> key id
        self._env_digest = hashlib.sha256(env_key.encode()).hexdigest() if env_key else None

    def _refresh(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._mtime:
            self._mtime = mtime
            records = KeyFile(self.path).records() if mtime is not None else []
            self._records = {r.key_id: r for r in records if r.revoked_at is None}
            self._verified.clear()

    @property
    def active(self) -> int:
        self._refresh()
        return len(self._records) + (1 if self._env_digest else 0)

    def known(self, key: str | None) -> str | None:
        """The key's id when it is the environment's key or was verified before (cheap:
        one SHA-256); None when it needs :meth:`check` (scrypt: run it off the loop)."""
        if not key:
            return None
        self._refresh()
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        if self._env_digest and hmac.compare_digest(fingerprint, self._env_digest):
            return _ENV_KEY_ID
        return self._verified.get(fingerprint)

    def check(self, key: str | None) -> str | None:
        """The key's id when it is accepted, else None."""
        if not key:
            return None
        self._refresh()
        fingerprint = hashlib.sha256(key.encode()).hexdigest()
        if self._env_digest and hmac.compare_digest(fingerprint, self._env_digest):
            return _ENV_KEY_ID
        known = self._verified.get(fingerprint)
        if known is not None:
            return known
        parts = _split(key)
        if parts is None or parts[0] not in self._records:
            return None
        record = self._records[parts[0]]
        if not hmac.compare_digest(_digest(parts[1], bytes.fromhex(record.salt)), record.digest):
            return None
        self._verified[fingerprint] = record.key_id
        return record.key_id
