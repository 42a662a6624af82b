"""AES-256-GCM envelopes are bound to their row and column, name their key, and refuse tampering."""

from __future__ import annotations

import base64
import json
import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import delete, update

from pmap.app import start
from pmap.audit.models import AuditKey
from pmap.core.crypto import KekRef, Keyring, KeyStore, associated_data, decode_key, generate_key, seal
from pmap.core.errors import ConfigurationError, CryptoError, NotFound
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.credentials.keyring import key_id_for, load_keyring
from pmap.credentials.models import KeyringCanary
from pmap.credentials.service import WebhookSecrets, seal_webhook_secrets
from pmap.integrations.models import Integration
from tests.conftest import Api

CREDS = {"access_key": "A" * 24, "secret_key": "S" * 24}


def _make(api: Api, h: dict[str, str], name: str) -> Integration:
    body = {"name": name, "vendor": "tenable_vm", "credentials": CREDS}
    r = api.client.post("/api/v1/integrations", json=body, headers=h)
    assert r.status_code == 201
    with api.state.sessions() as s:
        row = s.get(Integration, uuid.UUID(r.json()["id"]))
    assert row is not None
    return row


def _sealed(envelope: dict[str, Any] | None) -> dict[str, Any]:
    assert envelope is not None
    return envelope


def _resolve(api: Api, row: Integration) -> dict[str, str]:
    actor = Actor("system", "test", row.organization_id)
    with api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=actor) as r:
        return dict(r.values)


def test_envelope_shape_names_its_key(api: Api) -> None:
    row = _make(api, api.token(), "a")
    env = _sealed(row.encrypted_credentials)
    assert set(env) == {"v", "kp", "kek", "dk", "n", "ct"} and env["v"] == 2
    assert KekRef(env["kp"], env["kek"]) == api.state.keys.primary
    assert len(base64.b64decode(env["n"])) == 12
    assert len(base64.b64decode(env["dk"])) == 12 + 32 + 16  # nonce, the data key, the tag
    assert _resolve(api, row) == CREDS


def test_ciphertext_moved_to_another_row_or_column_fails(api: Api) -> None:
    h = api.token()
    a, b = _make(api, h, "a"), _make(api, h, "b")
    assert _resolve(api, a) == CREDS  # it opens where it belongs
    with api.state.sessions() as s:
        s.execute(update(Integration).where(Integration.id == b.id)
                  .values(encrypted_credentials=a.encrypted_credentials))
        s.commit()
        moved = s.get(Integration, b.id)
    assert moved is not None
    with pytest.raises(CryptoError):
        _resolve(api, moved)
    # the same envelope in the webhook column of its own row fails too
    a.encrypted_webhook_secret = a.encrypted_credentials
    actor = Actor("system", "test", a.organization_id)
    with pytest.raises(CryptoError), \
            api.state.resolver.resolve_webhook_secrets(a, purpose=Purpose.WEBHOOK_VERIFICATION, actor=actor):
        pass
    events = api.client.get("/api/v1/audit-events", params={"integration_id": str(b.id)},
                            headers=h).json()["items"]
    assert events[0]["outcome"] == "failure" and events[0]["purpose"] == "sync"


def test_tampered_ciphertext_fails(api: Api) -> None:
    row = _make(api, api.token(), "a")
    envelope = _sealed(row.encrypted_credentials)
    ct = bytearray(base64.b64decode(envelope["ct"]))
    ct[0] ^= 1
    row.encrypted_credentials = {**envelope, "ct": base64.b64encode(bytes(ct)).decode()}
    with pytest.raises(CryptoError):
        _resolve(api, row)


def test_cross_organization_resolve_refused(api: Api) -> None:
    """A 404 like any id of another organization (never a 500), before anything is opened or audited;
    tests/security/test_cross_org_resolve.py tries it through every endpoint that resolves."""
    h = api.token()
    row = _make(api, h, "a")
    stranger = Actor("system", "x", uuid.uuid4())
    with pytest.raises(NotFound), api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=stranger):
        pass
    secrets = WebhookSecrets("whsec-" + "w" * 24, None, None)
    row.encrypted_webhook_secret = seal_webhook_secrets(api.state.keys, row.id, secrets)
    with pytest.raises(NotFound), \
            api.state.resolver.resolve_webhook_secrets(row, purpose=Purpose.REVEAL, actor=stranger):
        pass
    assert api.client.get("/api/v1/audit-events", params={"action": "credentials.decrypt"},
                          headers=h).json()["items"] == []


def test_webhook_secret_decrypts_are_audited_too(api: Api) -> None:
    h = api.token()
    a, b = _make(api, h, "a"), _make(api, h, "b")
    secrets = WebhookSecrets("whsec-" + "w" * 24, None, None)
    a.encrypted_webhook_secret = seal_webhook_secrets(api.state.keys, a.id, secrets)
    b.encrypted_webhook_secret = a.encrypted_webhook_secret  # bound to a: cannot open in b
    actor = Actor("system", "test", a.organization_id)
    with api.state.resolver.resolve_webhook_secrets(a, purpose=Purpose.REVEAL, actor=actor):
        pass
    with pytest.raises(CryptoError), api.state.resolver.resolve_webhook_secrets(b, purpose=Purpose.REVEAL, actor=actor):
        pass
    items = api.client.get("/api/v1/audit-events", params={"action": "credentials.decrypt"},
                           headers=h).json()["items"]
    seen = {(e["integration_id"], e["outcome"], e["purpose"], e["detail"]["column"]) for e in items}
    assert seen == {(str(a.id), "success", "reveal", "encrypted_webhook_secret"),
                    (str(b.id), "failure", "reveal", "encrypted_webhook_secret")}
    assert "w" * 24 not in json.dumps(items)


def test_every_decrypt_is_audited_with_purpose(api: Api) -> None:
    h = api.token()
    row = _make(api, h, "a")
    _resolve(api, row)
    items = api.client.get("/api/v1/audit-events", params={"action": "credentials.decrypt"}, headers=h).json()["items"]
    assert len(items) == 1
    assert items[0]["purpose"] == "sync" and items[0]["outcome"] == "success" and items[0]["actor"] == "system:test"
    assert items[0]["integration_id"] == str(row.id)
    assert "A" * 24 not in json.dumps(items)


def test_start_refuses_a_key_that_does_not_open_stored_data(settings: Settings, api: Api) -> None:
    _make(api, api.token(), "a")
    other = settings.model_copy(update={"platform_key": SecretStr(generate_key())})
    with pytest.raises(ConfigurationError, match="not configured with"):
        start(other)


def test_start_refuses_other_key_material_under_the_same_key_id(db_url: str, tmp_path: Path) -> None:
    ring = tmp_path / "ring.json"
    Keyring.single(decode_key(generate_key(), source="t"), "k1").to_file(ring)
    settings = Settings(database_url=db_url, data_dir=tmp_path, keyring_file=ring)
    start(settings).engine.dispose()  # seals the canary of k1
    ring.unlink()
    Keyring.single(decode_key(generate_key(), source="t"), "k1").to_file(ring)  # same id, another key
    with pytest.raises(ConfigurationError, match="does not open its canary"):
        start(settings)


def test_a_new_development_keyring_is_refused_beside_sealed_data(api: Api, db_url: str, tmp_path: Path) -> None:
    _make(api, api.token(), "sealed")  # sealed under the fixture's platform key; its canary is stored too
    elsewhere = Settings(database_url=db_url, data_dir=tmp_path / "elsewhere", platform_key=None, keyring_file=None)
    with pytest.raises(ConfigurationError, match="already holds data sealed") as refused:
        start(elsewhere)
    assert str(tmp_path / "elsewhere") in refused.value.message and "PMAP_DATA_DIR" in refused.value.message
    assert not (tmp_path / "elsewhere" / "keyring.json").exists()
    with api.state.sessions() as session, session.begin():  # no canary left: the integration's envelope counts
        session.execute(delete(KeyringCanary))
    with pytest.raises(ConfigurationError, match="already holds data sealed"):
        start(elsewhere)
    assert not (tmp_path / "elsewhere" / "keyring.json").exists()
    with api.state.sessions() as session, session.begin():  # an empty slot (stored as JSON null) seals nothing
        session.execute(update(Integration).values(encrypted_credentials=None))
    with pytest.raises(ConfigurationError, match="already holds data sealed"):  # the audit chain's key is sealed too
        start(elsewhere)
    assert not (tmp_path / "elsewhere" / "keyring.json").exists()
    with api.state.sessions() as session, session.begin():
        session.execute(delete(AuditKey))
    start(elsewhere).engine.dispose()
    assert (tmp_path / "elsewhere" / "keyring.json").exists()


def test_production_needs_an_explicit_key(tmp_path: Path, db_url: str) -> None:
    s = Settings(env="production", database_url=db_url, data_dir=tmp_path, platform_key=None, keyring_file=None)
    with pytest.raises(ConfigurationError, match="PMAP_PLATFORM_KEY"):
        load_keyring(s)


# ids name each case: random values in ids would differ between xdist workers and break the collection
@pytest.mark.parametrize("key", [
    pytest.param(base64.b64encode(os.urandom(16)).decode(), id="128-bit"),
    pytest.param("not base64 at all!", id="not-base64"),
    pytest.param(base64.b64encode(b"\x00" * 32).decode(), id="all-zero"),
    pytest.param(base64.b64encode(os.urandom(48)).decode(), id="384-bit"),
])
def test_short_malformed_or_weak_keys_refused(key: str) -> None:
    with pytest.raises(ConfigurationError):
        decode_key(key, source="PMAP_PLATFORM_KEY")


def test_each_seal_draws_a_fresh_96_bit_nonce() -> None:
    ring = KeyStore.of(Keyring.single(decode_key(generate_key(), source="t")))
    aad = associated_data("integrations", "encrypted_credentials", "r1")
    a, b = seal(ring, b"same secret", aad), seal(ring, b"same secret", aad)
    assert len(base64.b64decode(a["n"])) == 12
    assert a["n"] != b["n"] and a["ct"] != b["ct"] and a["dk"] != b["dk"]  # and a fresh data key


def test_a_single_keys_id_is_a_label_not_the_key(tmp_path: Path) -> None:
    material = generate_key()
    key = decode_key(material, source="t")
    kid = load_keyring(Settings(data_dir=tmp_path, platform_key=SecretStr(material))).primary
    assert kid == key_id_for(key)
    forms = (key.hex(), key.hex().upper(), material, base64.urlsafe_b64encode(key).decode())
    assert not any(form[i:i + 8] in kid for form in forms for i in range(len(form) - 7)), \
        "the key id carries key material"


def test_a_keyring_file_readable_by_others_is_refused_in_production(tmp_path: Path) -> None:
    path = tmp_path / "ring.json"
    Keyring.single(decode_key(generate_key(), source="t")).to_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigurationError, match="readable by other users"):
        load_keyring(Settings(env="production", data_dir=tmp_path, keyring_file=path))
    # warned only
    assert load_keyring(Settings(env="development", data_dir=tmp_path, keyring_file=path)).primary == "k1"


def test_development_keyring_created_0600_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = Settings(env="development", data_dir=tmp_path, platform_key=None)
    k1 = load_keyring(s)
    path = tmp_path / "keyring.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sum("created a development keyring" in r.message for r in caplog.records) == 1
    k2 = load_keyring(s)
    assert k1 == k2
    assert sum("created a development keyring" in r.message for r in caplog.records) == 1


def test_keyring_file_with_rotation(tmp_path: Path) -> None:
    k_old, k_new = decode_key(generate_key(), source="t"), decode_key(generate_key(), source="t")
    path = tmp_path / "ring.json"
    Keyring(keys={"k1": k_old, "k2": k_new}, primary="k2").to_file(path)
    ring = load_keyring(Settings(keyring_file=path, data_dir=tmp_path))
    assert ring.primary == "k2" and set(ring.keys) == {"k1", "k2"}
    assert key_id_for(k_old) != key_id_for(k_new)
