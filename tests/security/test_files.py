"""Files PMAP writes: a private data directory and SQLite files (with their WAL) readable by the owner only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from pmap.app import start
from pmap.core.crypto import generate_key
from pmap.core.db import database_location, make_engine
from pmap.core.errors import ConfigurationError
from pmap.core.files import private_directory, private_sqlite_file
from pmap.core.settings import Settings
from pmap.migrations import upgrade
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The common umask 022, under which a plain create is world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("where", ["in the data dir", "elsewhere"])
def test_the_sqlite_database_and_its_wal_are_created_private(tmp_path: Path, loose_umask: None, where: str) -> None:
    data_dir = tmp_path / "data"
    db = data_dir / "pmap.db" if where == "in the data dir" else tmp_path / "other" / "pmap.db"
    db.parent.mkdir(exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=f"sqlite:///{db}", platform_key=SecretStr(generate_key()))
    upgrade(settings.resolved_database_url)
    state = start(settings)
    try:
        with state.engine.connect() as conn:  # the WAL and shared-memory files exist while a connection is open
            conn.execute(text("CREATE TABLE wal_probe (x INTEGER)"))
            conn.commit()
            companions = [Path(f"{db}-wal"), Path(f"{db}-shm")]
            assert all(p.exists() for p in companions)
            assert {p.name: _mode(p) for p in [db, *companions]} == {p.name: 0o600 for p in [db, *companions]}
    finally:
        state.engine.dispose()
    assert _mode(data_dir) == 0o700


def test_loose_files_are_tightened_and_stricter_ones_kept(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    os.chmod(data_dir, 0o755)  # noqa: S103 - the loose mode PMAP must tighten
    db = data_dir / "pmap.db"
    url = f"sqlite:///{db}"
    upgrade(url)
    os.chmod(db, 0o644)
    for suffix, mode in (("-wal", 0o664), ("-shm", 0o644), ("-journal", 0o666)):
        Path(f"{db}{suffix}").touch()
        os.chmod(f"{db}{suffix}", mode)
    make_engine(url).dispose()  # every engine is made private before it connects (SQLite would drop the empty WAL)
    assert [_mode(Path(f"{db}{s}")) for s in ("", "-wal", "-shm", "-journal")] == [0o600] * 4
    os.chmod(db, 0o644)
    start(Settings(data_dir=data_dir, database_url=url, platform_key=SecretStr(generate_key()))).engine.dispose()
    assert (_mode(data_dir), _mode(db)) == (0o700, 0o600)

    strict = tmp_path / "strict"
    strict.mkdir()
    os.chmod(strict, 0o500)
    private_directory(strict)
    assert _mode(strict) == 0o500  # never widened
    read_only = tmp_path / "ro.db"
    read_only.touch()
    os.chmod(read_only, 0o400)
    private_sqlite_file(f"sqlite:///{read_only}")
    assert _mode(read_only) == 0o400


def test_in_memory_and_other_databases_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for url in ("sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@h/db"):
        private_sqlite_file(url)
    assert list(tmp_path.iterdir()) == []


def test_the_data_dir_is_absolute_from_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings(data_dir=Path("rel") / ".." / "data")
    assert settings.data_dir == tmp_path / "data"
    assert Settings().data_dir == tmp_path / ".pmap"
    monkeypatch.chdir(tmp_path.parent)  # a later change of directory moves nothing
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'data' / 'pmap.db'}"


def test_the_database_location_never_shows_a_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shown = database_location("postgresql+psycopg://pmap:hunter2-pw@db.example:5432/pmap?sslmode=require")
    assert "hunter2" not in shown and "db.example:5432/pmap" in shown
    monkeypatch.chdir(tmp_path)
    assert database_location("sqlite:///rel.db") == f"SQLite file {tmp_path / 'rel.db'}"
    assert "hunter2" not in database_location("no scheme at all hunter2")


def test_the_upload_spool_directory_is_made_private_too(api: Api, loose_umask: None) -> None:
    admin = api.token("acme", "admin")
    data_dir = api.state.settings.data_dir
    assert _mode(data_dir) == 0o700  # made so at start
    spool = data_dir / "imports"
    spool.mkdir()
    os.chmod(spool, 0o755)  # noqa: S103 - left loose by an earlier version or by hand
    iid = create_integration(api, admin)
    assert upload(api, iid, nessus_report([{"plugin": 1, "host": "10.0.0.1"}]), admin).status_code == 200
    assert _mode(spool) == 0o700


def test_a_shared_sticky_directory_is_refused_as_the_data_dir(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)  # noqa: S103 - like /tmp: tightening it would break everyone else's use of it
    with pytest.raises(ConfigurationError, match="shared directory"):
        private_directory(shared)
    assert _mode(shared) == 0o1777
    assert _mode(private_directory(shared / "pmap")) == 0o700  # a directory of its own inside it is fine
