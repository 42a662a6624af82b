"""Rotating the key-encryption key online: data keys re-wrapped (content untouched), version 1 envelopes re-sealed
through the audited decrypt path, batches committed with the run's progress so a killed run continues, no write
over an envelope a server sealed meanwhile; then the old key can go."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pmap.app import start
from pmap.audit.models import AuditEvent
from pmap.audit.service import SessionAudit
from pmap.core.crypto import KekRef, Keyring, KeyStore, aad_prefix, decode_key, generate_key, open_envelope, seal
from pmap.core.errors import ConfigurationError, CryptoError
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.core.state import AppState
from pmap.credentials import rotation
from pmap.credentials.models import KeyRotation
from pmap.credentials.rotation import RotationReport, rotate
from pmap.credentials.service import WebhookSecrets, rewrap_envelope, seal_credentials, seal_webhook_secrets
from pmap.integrations.models import Integration
from tests.conftest import Api

CREDS = {"access_key": "A" * 24, "secret_key": "S" * 24}


def _ring(path: Path, keys: dict[str, bytes], primary: str) -> Path:
    if path.exists():
        path.unlink()
    Keyring(keys=keys, primary=primary).to_file(path)
    return path


def _seed(db_url: str, tmp_path: Path, count: int, tamper: Callable[[Session, list[Integration], KeyStore], None],
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
        ids = [client.post("/api/v1/integrations", json={"name": f"t{i}", "vendor": "tenable_vm", "credentials": CREDS},
                           headers=h).json()["id"] for i in range(count)]
        with api.state.sessions() as s:
            tamper(s, [s.get_one(Integration, uuid.UUID(i)) for i in ids], api.state.keys)
            s.commit()
    return settings, ring, old, new, ids


def rotate_all(state: AppState, **kw: Any) -> RotationReport:
    """`pmapctl keys rotate`'s call."""
    return rotate(state.sessions, state.keys, state.resolver, SessionAudit, **kw)


def _row(session: Session, iid: str) -> Integration:
    row = session.get(Integration, uuid.UUID(iid))
    assert row is not None
    return row


def _sealed(envelope: dict[str, Any] | None) -> dict[str, Any]:
    assert envelope is not None
    return envelope


def _resolve(state: AppState, iid: str) -> dict[str, str]:
    with state.sessions() as s:
        row = _row(s, iid)
        with state.resolver.resolve(row, purpose=Purpose.SYNC, actor=Actor("system", "t", row.organization_id)) as c:
            return dict(c.values)


def test_rotation_rewraps_data_keys_without_touching_content_and_retires_the_old_key(db_url: str,
                                                                                     tmp_path: Path) -> None:
    def add_webhook_secret(_s: Session, rows: list[Integration], keys: KeyStore) -> None:
        rows[0].encrypted_webhook_secret = seal_webhook_secrets(keys, rows[0].id,
                                                                WebhookSecrets("whsec-x" * 4, None, None))

    settings, ring, old, new, [iid] = _seed(db_url, tmp_path, 1, add_webhook_secret)
    state = start(settings)
    with state.sessions() as s:
        before = _sealed(_row(s, iid).encrypted_credentials)
        updated_at = _row(s, iid).updated_at
    state.engine.dispose()

    # k2 becomes primary; k1 stays until everything is moved
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    report = rotate_all(state)
    assert (report.rewrapped, report.resealed, report.current, report.remaining) == (2, 0, 0, 0)
    assert rotate_all(state).current == 2  # idempotent
    with state.sessions() as s:
        row = _row(s, iid)
        after = _sealed(row.encrypted_credentials)
        assert after["kek"] == "k2" and _sealed(row.encrypted_webhook_secret)["kek"] == "k2"
        assert (after["n"], after["ct"]) == (before["n"], before["ct"]) and after["dk"] != before["dk"]
        assert row.updated_at == updated_at  # a key change is not an edit
        # no credential was decrypted: one rewrap event for the batch, counting both envelopes
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.purpose == "key_rotation")))
        assert [(e.action, e.integration_id, e.detail) for e in events] == [
            ("keys.rewrap", None, {"envelopes": 2, "kek": "keyring:k2"})]
        assert [r.outcome for r in s.scalars(select(KeyRotation).order_by(KeyRotation.id))] == ["finished"] * 2
    state.engine.dispose()

    # the old key is gone from the keyring: PMAP starts and opens everything
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k2": new}, "k2")}))
    assert _resolve(state, iid) == CREDS
    state.engine.dispose()

    # and a keyring that lacks the key in use is still refused
    with pytest.raises(ConfigurationError):
        stranger = {"k3": decode_key(generate_key(), source="t")}
        start(settings.model_copy(update={"keyring_file": _ring(ring, stranger, "k3")}))


def _legacy(keyring: Keyring, row: Integration, values: dict[str, str]) -> dict[str, Any]:
    """A version 1 envelope as PMAP sealed them before data keys: the content directly under a keyring key."""
    import json
    import os

    nonce = os.urandom(12)
    aad = aad_prefix("integrations", "encrypted_credentials") + row.id.bytes
    ct = AESGCM(keyring.keys[keyring.primary]).encrypt(nonce, json.dumps(values, sort_keys=True).encode(), aad)
    return {"v": 1, "kid": keyring.primary, "n": base64.b64encode(nonce).decode(), "ct": base64.b64encode(ct).decode()}


def test_version_1_envelopes_open_and_are_resealed_through_the_audited_decrypt_path(db_url: str,
                                                                                   tmp_path: Path) -> None:
    def make_legacy(_s: Session, rows: list[Integration], keys: KeyStore) -> None:
        assert keys.keyring is not None
        rows[0].encrypted_credentials = _legacy(keys.keyring, rows[0], CREDS)

    settings, ring, old, new, [iid] = _seed(db_url, tmp_path, 1, make_legacy)
    state = start(settings)
    assert _resolve(state, iid) == CREDS  # version 1 still opens
    state.engine.dispose()
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    report = rotate_all(state)
    assert (report.resealed, report.rewrapped) == (1, 0)
    with state.sessions() as s:
        env = _sealed(_row(s, iid).encrypted_credentials)
        assert (env["v"], env["kek"]) == (2, "k2")
        purposes = list(s.scalars(select(AuditEvent.purpose).where(AuditEvent.integration_id == uuid.UUID(iid))))
    assert purposes.count("key_rotation") == 1  # the decrypt that re-sealed it
    assert _resolve(state, iid) == CREDS
    state.engine.dispose()


def test_new_data_keys_reseal_every_envelope(db_url: str, tmp_path: Path) -> None:
    settings, ring, old, new, ids = _seed(db_url, tmp_path, 2, lambda _s, _r, _k: None)
    state = start(settings)
    with state.sessions() as s:
        before = {i: _sealed(_row(s, i).encrypted_credentials) for i in ids}
    report = rotate_all(state, new_data_keys=True)
    assert (report.resealed, report.rewrapped, report.current) == (2, 0, 0)
    with state.sessions() as s:
        for i in ids:
            after = _sealed(_row(s, i).encrypted_credentials)
            assert after["ct"] != before[i]["ct"] and after["dk"] != before[i]["dk"]
    assert all(_resolve(state, i) == CREDS for i in ids)
    state.engine.dispose()


def test_an_envelope_that_cannot_be_opened_is_named_and_keeps_the_old_key(db_url: str, tmp_path: Path) -> None:
    from pmap.credentials.models import KeyringCanary

    def move_envelope(_s: Session, rows: list[Integration], _keys: KeyStore) -> None:
        rows[1].encrypted_credentials = dict(_sealed(rows[0].encrypted_credentials))  # bound to the first: cannot open

    settings, ring, old, new, ids = _seed(db_url, tmp_path, 2, move_envelope)
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    report = rotate_all(state)
    assert report.rewrapped == 1 and report.failed == [f"{ids[1]}: encrypted_credentials"]
    assert report.remaining == 1
    with state.sessions() as s:
        assert _sealed(_row(s, ids[1]).encrypted_credentials)["kek"] == "k1"  # untouched
        assert set(s.scalars(select(KeyringCanary.key_id))) == {"keyring:k1", "keyring:k2"}  # k1 is still needed
        assert s.scalar(select(KeyRotation.outcome)) == "incomplete"
    state.engine.dispose()


class _Killed(BaseException):
    """Stands for SIGKILL inside one process: nothing after it runs, no handler catches it (the fault suite kills a
    real `pmapctl keys rotate`; tests/faults)."""


def test_a_run_killed_midway_continues_after_its_last_committed_batch(db_url: str, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    settings, ring, old, new, ids = _seed(db_url, tmp_path, 7, lambda _s, _r, _k: None)
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    real = rewrap_envelope
    calls = {"n": 0}

    def dies_in_the_third_batch(*a: Any) -> Any:
        calls["n"] += a[1][0] == "integrations"  # not the audit key, moved first
        if calls["n"] == 5:  # batches of 2 integrations, one envelope each: the 5th is the third batch's first
            raise _Killed
        return real(*a)

    monkeypatch.setattr(rotation, "rewrap_envelope", dies_in_the_third_batch)
    with pytest.raises(_Killed):
        rotate_all(state, batch=2)
    with state.sessions() as s:
        run = s.scalars(select(KeyRotation)).one()
        assert (run.done, run.finished_at) == (4, None)  # two batches committed, the third rolled back
        assert (run.rewrapped, run.resealed) == (4, 0)  # what they moved, committed with them
        keks = sorted(_sealed(_row(s, i).encrypted_credentials)["kek"] for i in ids)
        assert keks == ["k1"] * 3 + ["k2"] * 4
    assert all(_resolve(state, i) == CREDS for i in ids)  # meanwhile every envelope opens

    monkeypatch.setattr(rotation, "rewrap_envelope", real)
    walked: list[int] = []
    report = rotate_all(state, batch=2, progress=lambda done, _total: walked.append(done))
    assert report.resumed_after == 4 and walked == [6, 7] and report.rewrapped == 3 and report.remaining == 0
    assert (report.resumed_rewrapped, report.resumed_resealed) == (4, 0)  # the killed run's moves, reported
    with state.sessions() as s:
        assert s.scalars(select(KeyRotation)).one().outcome == "finished"
    assert all(_resolve(state, i) == CREDS for i in ids)
    state.engine.dispose()


def test_an_envelope_a_server_seals_during_the_batch_is_not_overwritten(db_url: str, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    settings, ring, old, new, [iid] = _seed(db_url, tmp_path, 1, lambda _s, _r, _k: None)
    state = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))
    fresh = {"access_key": "B" * 24, "secret_key": "T" * 24}
    real = rewrap_envelope

    def a_server_writes_meanwhile(*a: Any) -> Any:
        moved = real(*a)
        if a[1][0] != "integrations":  # the audit key, moved first
            return moved
        with state.sessions() as s:  # an operator saved new credentials while the batch ran
            s.execute(update(Integration).where(Integration.id == uuid.UUID(iid)).values(
                encrypted_credentials=seal_credentials(state.keys, uuid.UUID(iid), fresh)))
            s.commit()
        return moved

    monkeypatch.setattr(rotation, "rewrap_envelope", a_server_writes_meanwhile)
    report = rotate_all(state)
    assert report.changed_meanwhile == 1 and report.rewrapped == 0 and report.remaining == 0
    assert _resolve(state, iid) == fresh  # the server's write stands
    state.engine.dispose()


def test_a_key_store_follows_the_named_kek_it_holds_at_its_interval_and_keeps_the_last_answer(
        caplog: pytest.LogCaptureFixture) -> None:
    k1, k2 = decode_key(generate_key(), source="t"), decode_key(generate_key(), source="t")
    now = [0.0]
    store = KeyStore(KekRef("keyring", "k1"), {"keyring": Keyring(keys={"k1": k1, "k2": k2}, primary="k1")},
                     clock=lambda: now[0])
    named: list[KekRef | None] = [None]
    reads = [0]

    def announced() -> KekRef | None:
        reads[0] += 1
        if named[0] == KekRef("test", "down"):
            raise CryptoError("the database did not answer")
        return named[0]

    store.follow(announced, every=10)
    assert store.primary == KekRef("keyring", "k1") and reads == [1]  # no rotation named anything yet
    named[0] = KekRef("keyring", "k2")
    assert store.primary == KekRef("keyring", "k1") and reads == [1]  # read again only after 10 s
    now[0] = 10
    assert store.primary == KekRef("keyring", "k2") and reads == [2]
    aad = aad_prefix("integrations", "encrypted_credentials") + uuid.uuid4().bytes
    envelope = seal(store, b"secret", aad)
    assert (envelope["kp"], envelope["kek"]) == ("keyring", "k2") and open_envelope(store, envelope, aad) == b"secret"
    assert (store.configured, store.wrap(b"k" * 32, aad, store.configured)[0]) == (KekRef("keyring", "k1"),) * 2
    named[0], now[0] = KekRef("test", "down"), 20
    assert store.primary == KekRef("keyring", "k2")  # the database did not answer: the last answer stands
    with caplog.at_level(logging.WARNING, logger="pmap.crypto"):
        for named[0], now[0] in ((KekRef("keyring", "k9"), 30), (KekRef("keyring", "k9"), 40)):
            assert store.primary == KekRef("keyring", "k1")  # a key this process does not hold: its own
        named[0], now[0] = KekRef("pkcs11", "kek-x"), 50
        assert store.primary == KekRef("keyring", "k1")  # a provider it is not configured with
    assert caplog.text.count("which this process does not hold") == 2  # once per key named, not per read
    named[0], now[0] = KekRef("keyring", "k2"), 60
    assert store.primary == KekRef("keyring", "k2")
    store.follow(None)  # a rotating process: the key it was configured with, whatever was named
    assert store.primary == KekRef("keyring", "k1")


def test_running_servers_seal_under_the_key_a_rotation_names_without_a_restart(
        db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings, ring, old, new, ids = _seed(db_url, tmp_path, 3, lambda _s, _r, _k: None)
    both = tmp_path / "both.json"
    # a server holding both keys and configured with the old one; another holding only the old one
    server = start(settings.model_copy(update={"keyring_file": _ring(both, {"k1": old, "k2": new}, "k1"),
                                               "kek_refresh_seconds": 0.5}))
    stranger = start(settings.model_copy(update={"kek_refresh_seconds": 0.5}))
    rotating = start(settings.model_copy(update={"keyring_file": _ring(ring, {"k1": old, "k2": new}, "k2")}))

    def server_saves(state: AppState) -> tuple[str, str]:
        """An operator saves new credentials through ``state``: the KEK the envelope names, and the id."""
        iid = uuid.uuid4()
        with state.sessions() as s:
            org = _row(s, ids[0]).organization_id
            s.add(Integration(id=iid, organization_id=org, name=f"saved-{iid.hex[:8]}", vendor="tenable_vm",
                              category="vm", encrypted_credentials=seal_credentials(state.keys, iid, CREDS)))
            s.commit()
            return _sealed(_row(s, str(iid)).encrypted_credentials)["kek"], str(iid)

    assert server_saves(server)[0] == "k1"
    during: list[str] = []
    # while the walk runs (the server has not read the new name yet) the server seals under k1: the sweep moves it
    report = rotate_all(rotating, batch=2, settle_seconds=0.6,
                        progress=lambda _done, _total: during.append(server_saves(server)[0]))
    assert during[0] == "k1" and report.remaining == 0 and not report.failed
    with caplog.at_level(logging.WARNING, logger="pmap.crypto"):
        after, made = server_saves(server)
        assert after == "k2"  # named by the rotation: no restart, no new configuration
        assert _resolve(server, made) == CREDS and _resolve(rotating, made) == CREDS
        assert server_saves(stranger)[0] == "k1"  # it does not hold k2: its own key, said
    assert "the last key rotation named keyring:k2, which this process does not hold" in caplog.text
    for state in (server, stranger, rotating):
        state.engine.dispose()
