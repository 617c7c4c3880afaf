"""The shared files: what every worker must see, under one base path or object-store URL.

Landing drops, quarantine, validation results (JSON, GX Data Docs), drift reports, the
training snapshots' columnar copies and compiled model libraries live under
``CHURNOPS_DATA_URL`` (``SharedStorageSettings``): a local folder by default, or a shared
directory (``/mnt/churnops``, ``file:///...``) or any fsspec URL (``s3://bucket/prefix``;
s3fs reads the usual ``AWS_*`` variables, including ``AWS_ENDPOINT_URL`` for an
S3-compatible server). The DAGs and the code are the same either way; only the setting differs.

:class:`SharedFiles` is the resource, built once per process from the settings
(:func:`shared_files_for`) and handed to the stages, like the warehouse. It names the areas
(``landing_dir``, ``quarantine_dir``, ``validation_dir``, ``reports_dir``, ``training_dir``,
``models_dir``) as *locations*: a plain :class:`pathlib.Path` on a local base, so the
default does exactly what it did before (renames, no copies), and an fsspec-backed ``UPath`` (the
universal-pathlib path Airflow's ``ObjectStoragePath`` is built on) elsewhere. Both answer
``/``, ``glob``, ``is_dir``, ``iterdir``, ``stat``, ``open``, so listing and reading code
takes either. Writing goes through the helpers below, which keep every write whole:

- local: a temporary name beside the target, then ``os.replace``;
- object store: the file is written to local disk first, then put as one object (a PUT is
  atomic per object: readers see the old object or the new one, never half of it).

:meth:`SharedFiles.check` answers, once, whether this worker can see the base; when it
cannot, :class:`SharedPathUnavailable` says in one line which URL (without credentials)
and what to check. The first task that touches the files calls it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast
from urllib.parse import urlsplit, urlunsplit

from churnops.errors import one_line
from churnops.settings import Settings, SharedStorageSettings

if TYPE_CHECKING:
    import pyarrow as pa
    from upath import UPath

log = logging.getLogger(__name__)

# A folder or file of the shared files: a local Path, or an fsspec-backed UPath.
Location: TypeAlias = "Path | UPath"

LANDING = "landing"
QUARANTINE = "quarantine"
VALIDATION = "validation"
REPORTS = "reports"
COMPILED = "compiled"
TRAINING = "training"


class SharedPathUnavailable(RuntimeError):
    """This worker cannot see the shared files' base (missing mount, unknown bucket, no
    credentials, endpoint down). The message names the URL without credentials."""


def safe_url(url: str) -> str:
    """``url`` without a user, password or query string (where credentials hide)."""
    parts = urlsplit(url)
    if not parts.scheme or parts.scheme == "file":
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_local(location: Location) -> bool:
    """True for a path on this machine's file system (a plain ``Path``)."""
    return isinstance(location, Path)


def _remote(location: Location) -> UPath:
    if isinstance(location, Path):
        raise TypeError(f"{location} is a local path")
    return location


class SharedFiles:
    """The shared files' base: a file system, its root, and the areas under it."""

    def __init__(self, data_url: str, models_url: str | None = None, create: bool = True) -> None:
        """``create``: make the base on first use (the default local layout); otherwise a
        missing base is :class:`SharedPathUnavailable` (a shared mount that is not there)."""
        self.url = safe_url(data_url)
        self.create = create
        self.base = _location(data_url)
        self.models_base = _location(models_url) if models_url else self.base / "models"
        self.is_local = is_local(self.base)
        self._checked = False

    @classmethod
    def local(cls, data_dir: Path, models_dir: Path | None = None) -> SharedFiles:
        """A local base (tests, tools): ``data_dir`` as ``CHURNOPS_DATA_URL`` would be."""
        return cls(str(data_dir), str(models_dir) if models_dir else None)

    def __repr__(self) -> str:
        return f"SharedFiles({self.url!r})"

    # ------------------------------------------------------------------ the areas
    @property
    def landing_dir(self) -> Location:
        return self.base / LANDING

    @property
    def quarantine_dir(self) -> Location:
        return self.base / QUARANTINE

    @property
    def validation_dir(self) -> Location:
        """Great Expectations results (JSON) and Data Docs (HTML)."""
        return self.base / VALIDATION

    @property
    def reports_dir(self) -> Location:
        return self.base / REPORTS

    @property
    def training_dir(self) -> Location:
        """Columnar copies of the labelled training snapshots (``churnops.features.copies``)."""
        return self.base / TRAINING

    @property
    def models_dir(self) -> Location:
        """Compiled model libraries, shared by every worker (see ``churnops.score.engine``)."""
        return self.models_base / COMPILED

    # ------------------------------------------------------------------ reachability
    def check(self, again: bool = False) -> SharedFiles:
        """Raise :class:`SharedPathUnavailable` unless this worker sees the base (once per
        process unless ``again``: a worker that saw it keeps going; a later outage fails
        the operation)."""
        if self._checked and not again:
            return self
        if self.is_local:
            self._check_local()
        else:
            self._check_remote()
        self._checked = True
        return self

    def _check_local(self) -> None:
        base = self.base
        assert isinstance(base, Path)
        if not base.exists() and self.create:
            try:
                base.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise self._unavailable(
                    one_line(error, with_type=True), "that it can be created"
                ) from None
        if not base.is_dir():
            raise self._unavailable(
                "no such directory" if not base.exists() else "not a directory",
                "that the shared directory is mounted on this worker",
            )
        if not os.access(base, os.R_OK | os.W_OK | os.X_OK):
            raise self._unavailable("not readable and writable by this user", "its permissions")

    def _check_remote(self) -> None:
        base = _remote(self.base)
        fs = base.fs
        container = str(base.path).strip("/").split("/")[0]
        try:
            # The bucket (container) must answer a listing: an empty prefix is a valid base.
            fs.ls(container, detail=False)
        except Exception as error:  # noqa: BLE001 - every backend raises its own types
            raise self._unavailable(
                one_line(error, with_type=True),
                f"that the bucket {container!r} exists and this worker's credentials "
                "(AWS_* variables, instance role, ...) may read and write it",
            ) from None

    def _unavailable(self, reason: str, what: str) -> SharedPathUnavailable:
        return SharedPathUnavailable(
            f"the shared data path {self.url} is not reachable from this worker "
            f"({socket.gethostname()}): {reason}. Check CHURNOPS_DATA_URL and {what}"
        )


def _location(url: str) -> Location:
    """A local ``Path`` for a path or ``file://`` URL, else a ``UPath`` on its fsspec file system."""
    parts = urlsplit(url)
    if not parts.scheme:
        return Path(url)
    if parts.scheme in ("file", "local"):
        return Path(parts.path)
    from upath import UPath

    return UPath(url)


@functools.cache
def _shared(settings: SharedStorageSettings) -> SharedFiles:
    return SharedFiles(settings.data_url, settings.models_url, create=not settings.configured)


def shared_files_for(settings: Settings) -> SharedFiles:
    """The process's shared files for these settings (a ``Settings``; built on first use)."""
    return _shared(settings.storage)


# ---------------------------------------------------------------------- reading
def read_parquet(path: Location) -> pa.Table:
    """One Parquet file, whole (pyarrow on the location's file system)."""
    import pyarrow.parquet as pq

    if isinstance(path, Path):
        return pq.ParquetFile(path).read()
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    filesystem = PyFileSystem(FSSpecHandler(path.fs))
    with filesystem.open_input_file(path.path) as source:
        return pq.ParquetFile(source).read()


def fetch_file(path: Location, local: Path) -> bool:
    """Copy ``path`` to the local file ``local`` (whole: temp name, then rename); False
    when ``path`` does not exist."""
    if not path.exists():
        return False
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = local.with_name(f".{local.name}.{uuid.uuid4().hex[:8]}.download")
    try:
        if isinstance(path, Path):
            shutil.copyfile(path, tmp)
        else:
            path.fs.get_file(path.path, str(tmp))
        os.replace(tmp, local)
    finally:
        tmp.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def local_copy(path: Location) -> Iterator[Path]:
    """``path`` as a local file for the block (itself when local, else a temporary copy)."""
    if isinstance(path, Path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="churnops-") as tmp:
        local = Path(tmp) / path.name
        if not fetch_file(path, local):
            raise FileNotFoundError(str(path))
        yield local


# ---------------------------------------------------------------------- writing
@contextlib.contextmanager
def writing(path: Location) -> Iterator[Path]:
    """A local file to write ``path``'s content into; on success it becomes ``path``
    whole (renamed into place locally, put as one object remotely); on error nothing
    changes at ``path``."""
    if isinstance(path, Path):
        target = path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            if not tmp.exists():
                raise OSError(f"nothing was written to {tmp}")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return
    with tempfile.TemporaryDirectory(prefix="churnops-") as tmp_dir:
        tmp = Path(tmp_dir) / path.name
        yield tmp
        if not tmp.exists():
            raise OSError(f"nothing was written for {path}")
        put_file(tmp, path)


def put_file(local: Path, path: Location) -> None:
    """Copy the local file ``local`` to ``path``, whole."""
    if isinstance(path, Path):
        with writing(path) as tmp:
            shutil.copyfile(local, tmp)
        return
    path.fs.put_file(str(local), path.path)


def copy_file(source: Location, path: Location) -> None:
    """Copy a file of the shared files to ``path``, whole (server-side on an object store)."""
    if isinstance(source, Path):
        put_file(source, path)
        return
    source.fs.copy(source.path, _remote(path).path)


def write_bytes(path: Location, data: bytes) -> None:
    """``data`` as the content of ``path``, whole."""
    if isinstance(path, Path):
        with writing(path) as tmp:
            tmp.write_bytes(data)
        return
    path.fs.pipe_file(path.path, data)


def write_text(path: Location, text: str) -> None:
    write_bytes(path, text.encode())


def write_parquet(table: pa.Table, path: Location, **options: Any) -> None:
    """``table`` as the Parquet file ``path``, whole (``options`` go to ``pq.write_table``)."""
    import pyarrow.parquet as pq

    with writing(path) as tmp:
        pq.write_table(table, tmp, **options)


def remove_tree(path: Location) -> None:
    """Delete a folder (or file) and everything under it; nothing when it is missing."""
    if isinstance(path, Path):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        return
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm(path.path, recursive=True)
    path.fs.invalidate_cache(path.path)


def put_folder(local: Path, target: Location, last: tuple[str, ...] = ()) -> None:
    """Copy the files of the local folder ``local`` under ``target``, file by file (each
    whole); names in ``last`` (top-level) are copied after every other file, so a reader
    that waits for them sees the rest complete."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.relative_to(local).as_posix() in last)
    for file in files:
        destination = target
        for part in file.relative_to(local).parts:
            destination = destination / part
        put_file(file, destination)


def glob(folder: Location, pattern: str) -> list[Location]:
    """The entries of ``folder`` matching ``pattern``, sorted by name (none when missing)."""
    if not folder.is_dir():
        return []
    found: list[Location] = list(cast("Iterator[Location]", folder.glob(pattern)))
    return sorted(found, key=lambda p: p.name)


def file_names(folder: Location, pattern: str = "*") -> list[str]:
    """Names of the files directly in ``folder`` matching ``pattern``, sorted (none when
    the folder is missing)."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.glob(pattern) if p.is_file())


__all__ = [
    "Location",
    "SharedFiles",
    "SharedPathUnavailable",
    "copy_file",
    "fetch_file",
    "file_names",
    "glob",
    "is_local",
    "local_copy",
    "put_file",
    "put_folder",
    "read_parquet",
    "remove_tree",
    "safe_url",
    "shared_files_for",
    "write_bytes",
    "write_parquet",
    "write_text",
    "writing",
]
