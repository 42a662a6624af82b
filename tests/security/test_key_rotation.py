"""Rotating the platform key: re-seal under the new primary, audited, then the old key can go."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pmap.app import start
from pmap.audit.models import AuditEvent
from pmap.core.crypto import Keyring, decode_key, generate_key
from pmap.core.errors import ConfigurationError
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.credentials.rotation import reseal_all
from pmap.credentials.service import WebhookSecrets, seal_webhook_secrets
from pmap.integrations.models import Integration
from tests.conftest import Api


def _ring(path: Path, keys: dict[str, bytes], primary: str) -> Path:
    if path.exists():
        path.unlink()
    Keyring(keys=keys, primary=primary).to_file(path)
    return path


def _seed(db_url: str, tmp_path: Path, count: int, tamper: Callable[[Session, list[Integration], Keyring], None],
          ) -> tuple[Settings, Path, bytes, bytes, list[str]]:
    """Integrations sealed under k1 (then ``tamper``-ed with); the settings, ring path, both keys and the ids."""
    from fastapi.testclient import TestClient

    from pmap.app import create_app

    old, new = decode_key(generate_key(), source="t"), decode_key(generate_key(), source="t")
    ring = tmp_path / "ring.json"
    settings = Settings(database_url=db_url, data_dir=tmp_path, keyring_file=_ring(ring, {"k1": old}, "k1"))
    with TestClient(create_app(settings)) as client:
        api = Api(client)
        h = api.token()
        ids = [client.post("/api/v1/integrations", json={"name": f"t{i}", "vendor": "tenable_vm", "credentials": {
            "access_key": "A" * 24, "secret_key": "S" * 24}}, headers=h).json()["id"] for i in range(count)]
        with api.state.sessions() as s:
            tamper(s, [s.get_one(Integration, uuid.UUID(i)) for i in ids], api.state.keyring)
            s.commit()
    return settings, ring, old, new, ids


def _row(session: Session, iid: str) -> Integration:
    row = session.get(Integration, uuid.UUID(iid))
    assert row is not None
    return row


def _sealed(envelope: dict[str, Any] | None) -> dict[str, Any]:
    assert envelope is not None
    return envelope


def _kid(envelope: dict[str, Any] | None) -> str:
    return str(_sealed(envelope)["kid"])


def test_rotation_reseals_everything_and_retires_the_old_key(db_url: str, tmp_path: Path) -> None:
    def add_webhook_secret(_s: Session, rows: list[Integration], keyring: Keyring) -> None:
        rows[0].encrypted_webhook_secret = seal_webhook_secrets(keyring, rows[0].id,
                                                                WebhookSecrets("whsec-x" * 4, None, None))

    settings, ring, old, new, [iid] = _seed(db_url, tmp_path, 1, add_webhook_secret)

    # k2 becomes primary; k1 stays until everything is re-sealed
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    with state.sessions() as s:
        report = reseal_all(s, state.keyring, state.resolver)
        assert (report.resealed, report.current) == (2, 0)
        assert reseal_all(s, state.keyring, state.resolver).current == 2  # idempotent
        row = _row(s, iid)
        assert _kid(row.encrypted_credentials) == "k2" and _kid(row.encrypted_webhook_secret) == "k2"
        purposes = list(s.scalars(select(AuditEvent.purpose).where(AuditEvent.integration_id == row.id)))
    assert purposes.count("key_rotation") == 2
    state.engine.dispose()

    # the old key is gone from the keyring: PMAP starts and opens everything
    only_new = settings.model_copy(update={"keyring_file": _ring(ring, {"k2": new}, "k2")})
    state = start(only_new)
    with state.sessions() as s:
        row = _row(s, iid)
        with state.resolver.resolve(row, purpose=Purpose.SYNC, actor=Actor("system", "t", row.organization_id)) as c:
            assert c.values["access_key"] == "A" * 24
    state.engine.dispose()

    # and a keyring that lacks the key in use is still refused
    with pytest.raises(ConfigurationError):
        stranger = {"k3": decode_key(generate_key(), source="t")}
        start(settings.model_copy(update={"keyring_file": _ring(ring, stranger, "k3")}))


def test_an_envelope_that_cannot_be_opened_is_named_and_keeps_the_old_key(db_url: str, tmp_path: Path) -> None:
    from pmap.credentials.models import KeyringCanary

    def move_envelope(_s: Session, rows: list[Integration], _keyring: Keyring) -> None:
        rows[1].encrypted_credentials = dict(_sealed(rows[0].encrypted_credentials))  # bound to the first: cannot open

    settings, ring, old, new, ids = _seed(db_url, tmp_path, 2, move_envelope)
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    with state.sessions() as s:
        report = reseal_all(s, state.keyring, state.resolver)
        assert report.resealed == 1 and report.failed == [f"{ids[1]}: encrypted_credentials"]
        assert _kid(_row(s, ids[1]).encrypted_credentials) == "k1"  # untouched
        assert set(s.scalars(select(KeyringCanary.key_id))) == {"k1", "k2"}  # k1 is still needed
    state.engine.dispose()
