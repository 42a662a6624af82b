"""Backup and restore (README "Backup and restore"): a database dump restored beside its platform key opens
everything; the same dump without the key, or with another key, opens nothing, and PMAP refuses to start on it."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pmap.app import start
from pmap.core.crypto import generate_key
from pmap.core.errors import ConfigurationError
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.integrations.models import Integration
from tests.conftest import PG_URL, Api, canary

pytestmark = pytest.mark.postgres


@pytest.fixture
def restored_database() -> Iterator[str]:
    """An empty database of its own, dropped afterwards; its plain URL."""
    name = f"pmap_restore_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _dsn(url: str) -> str:
    u = make_url(url)
    return f"postgresql://{u.username}@{u.host}:{u.port or 5432}/{u.database}"


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # PostgreSQL only: the dump is pg_dump's
def test_a_dump_restored_with_its_key_opens_and_without_it_opens_nothing(
        api: Api, settings: Settings, restored_database: str, tmp_path: Path) -> None:
    secret = canary("backup")
    r = api.client.post("/api/v1/integrations", headers=api.token(), json={
        "name": "backed-up", "vendor": "tenable_vm", "credentials": {"access_key": "a" * 20, "secret_key": secret}})
    assert r.status_code == 201, r.text
    iid = uuid.UUID(r.json()["id"])
    pg_dump, psql = shutil.which("pg_dump"), shutil.which("psql")
    if pg_dump is None or psql is None:
        pytest.fail("pg_dump and psql are needed (install postgresql-client)")
    url = make_url(settings.resolved_database_url)
    options = url.query["options"]
    schema = (options if isinstance(options, str) else options[0]).split("search_path=")[1]
    dump = tmp_path / "pmap.sql"
    subprocess.run([pg_dump, "--no-owner", "-n", schema, "-f", str(dump), _dsn(str(url))], check=True)
    assert secret.encode() not in dump.read_bytes()  # the backup itself shows no secret
    subprocess.run([psql, "-q", "-v", "ON_ERROR_STOP=1", "-f", str(dump), _dsn(restored_database)], check=True,
                   capture_output=True)
    restored = f"{restored_database}?options=-csearch_path%3D{schema}"

    # with its key (the same PMAP_PLATFORM_KEY or keyring file, restored too): everything opens
    same_key = settings.model_copy(update={"database_url": restored, "data_dir": tmp_path / "same"})
    state = start(same_key)
    try:
        with state.sessions() as session:
            row = session.get_one(Integration, iid)
            actor = Actor(kind="system", name="restore-check", organization_id=row.organization_id)
            with state.resolver.resolve(row, purpose=Purpose.CONNECTION_TEST, actor=actor) as resolved:
                assert resolved.values["secret_key"] == secret
    finally:
        state.engine.dispose()

    # the dump alone, or with another key: PMAP refuses to start, and nothing opens
    other_key = settings.model_copy(update={"database_url": restored, "data_dir": tmp_path / "other",
                                            "platform_key": SecretStr(generate_key())})
    with pytest.raises(ConfigurationError, match="not configured with"):
        start(other_key)
    no_key = Settings(env="production", database_url=restored, data_dir=tmp_path / "none", platform_key=None)
    with pytest.raises(ConfigurationError):
        start(no_key)
