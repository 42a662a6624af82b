"""Files PMAP keeps on disk: a private data directory, SQLite database files only their owner reads, and the check
that a secret file (a keyring, a PIN) is its owner's alone."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from pmap.core.errors import ConfigurationError

log = logging.getLogger("pmap.files")

#: what SQLite keeps beside a database: the write-ahead log, its shared-memory index, the rollback journal
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_directory(path: Path) -> Path:
    """``path``, created (with its parents) or tightened to owner-only access; a stricter mode is kept.

    A shared directory (sticky bit, as /tmp) is refused rather than tightened under its other users.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = os.stat(path).st_mode
    if mode & stat.S_ISVTX:
        raise ConfigurationError(f"{path} is a shared directory (mode {stat.filemode(mode)}): PMAP needs a data "
                                 "directory of its own (set PMAP_DATA_DIR to a directory inside it)")
    _tighten(path, 0o700)  # mkdir's mode is cut by the umask and ignored for an existing directory
    return path


def sqlite_path(url: str) -> Path | None:
    """The absolute file a SQLite URL names; None for an in-memory database or another kind of database."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite":
        return None
    database = parsed.database or ""
    if parsed.query.get("uri") in ("true", "1") and database.startswith("file:"):
        if parsed.query.get("mode") == "memory":
            return None
        database = database.removeprefix("file:")
    if not database or database == ":memory:":
        return None
    return Path(os.path.abspath(database))


def private_sqlite_file(url: str) -> bool:
    """Create the SQLite database file of ``url`` with mode 0600, or tighten it and its companions to 0600.

    Called before SQLite opens the file, which would create it under the umask (0644 as a rule);
    SQLite then creates its -wal and -shm files with the database file's mode. Returns True when
    the file was created. Other databases and in-memory SQLite are left alone.
    """
    path = sqlite_path(url)
    if path is None:
        return False
    created = False
    try:
        # O_EXCL with the mode at creation: the file is never readable by others, not even briefly
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        created = True
    except FileExistsError:
        pass
    except FileNotFoundError:
        raise ConfigurationError(f"the directory of the SQLite database {path} does not exist") from None
    except OSError as exc:
        raise ConfigurationError(f"cannot create the SQLite database {path}: {exc.strerror}") from None
    for file in (path, *(Path(f"{path}{suffix}") for suffix in SQLITE_COMPANIONS)):
        _tighten(file, 0o600)
    if created:
        log.warning("created a new, empty SQLite database at %s (mode 0600)", path)
    return created


def open_to_others(path: Path) -> str | None:
    """``path``'s mode (``-rw-r--r--``) when its group or other users have any access to it, else None; raises
    OSError when it cannot be read."""
    mode = os.stat(path).st_mode
    return stat.filemode(mode) if mode & (stat.S_IRWXG | stat.S_IRWXO) else None


def _tighten(path: Path, allowed: int) -> None:
    """Drop from ``path``'s mode every bit outside ``allowed`` (never adds one)."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & ~allowed:
        try:
            os.chmod(path, mode & allowed)
        except OSError:  # not ours to change (another owner): say so rather than refuse to start
            log.warning("%s is open to other users (mode %s) and cannot be tightened", path, stat.filemode(mode))
