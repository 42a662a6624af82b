"""Issue 2 benchmark: listing 10,000 integrations (SQLite, PostgreSQL) and one credential resolve.

Prints list latency (median, p95) of 100-item pages through the real HTTP API, with the number of
decrypts the listing caused, and the cost of one credential resolve (audit write left out) beside
a bare AES-GCM decrypt of the same envelope bytes (under its data key: envelopes are version 2).
The same functions measure the HSM key-encryption key in :mod:`bench.keys`.

    python -m bench.integrations
"""

from __future__ import annotations

import binascii
import random
import tempfile
import time
import timeit
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import insert

from bench.common import pg_schema, served, summary
from pmap.app import create_app
from pmap.auth.principal import Role
from pmap.auth.service import get_or_create_org, issue_token
from pmap.core import crypto
from pmap.core.crypto import KeyStore, envelope_kek, generate_key
from pmap.core.db import make_engine, make_session_factory, transaction, utcnow
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.credentials import service as cred_service
from pmap.credentials.keyring import load_keys
from pmap.credentials.pkcs11 import Pkcs11Provider
from pmap.credentials.service import CredentialResolver, seal_credentials
from pmap.integrations.models import Integration
from pmap.migrations import upgrade

N_ROWS = 10_000
N_REQUESTS = 300
CREDS = {"access_key": "a" * 64, "secret_key": "s" * 64}
CREDS_AAD = crypto.aad_prefix("integrations", "encrypted_credentials")


class _NullAudit:
    def record(self, **_kw: Any) -> None:
        pass


def _seed(settings: Settings) -> tuple[str, Any]:
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    sessions = make_session_factory(engine)
    keys = load_keys(settings)
    with transaction(sessions) as s:
        org = get_or_create_org(s, "bench")
        token = issue_token(s, org, Role.VIEWER, "bench").token
        org_id = org.id
    rows = []
    base = utcnow()
    for i in range(N_ROWS):
        rid = uuid.uuid4()
        rows.append(dict(
            id=rid, organization_id=org_id, name=f"scanner-{i:05d}", vendor="tenable_vm", category="vm",
            connection={"base_url": "https://cloud.tenable.com", "verify_tls": True, "timeout_seconds": 10.0},
            encrypted_credentials=seal_credentials(keys, rid, CREDS),
            credential_fields=["access_key", "secret_key"], webhook_state={}, allow_unsigned_webhooks=False,
            enabled=True, created_at=base, updated_at=base,
        ))
    with engine.begin() as conn:
        for chunk in range(0, N_ROWS, 1000):
            conn.execute(insert(Integration), rows[chunk:chunk + 1000])
    engine.dispose()
    close_hsm(keys)
    return token, org_id


def close_hsm(keys: KeyStore) -> None:
    """Close this process's PKCS#11 session, if any. The login belongs to the process, not the session: while one
    provider's session is open, another provider on the same token (the served app's) fails to log in
    (UserAlreadyLoggedIn), so the bench closes each before the next opens."""
    for provider in keys.providers.values():
        if isinstance(provider, Pkcs11Provider):
            provider.close()


def bench_list(label: str, settings: Settings) -> tuple[list[float], int]:
    """Latencies (ms) of random 100-item pages over N_ROWS integrations sealed under ``settings``' keys, and the
    number of decrypts from the app's start to its end (printed, and returned for :mod:`bench.keys`)."""
    token, _ = _seed(settings)
    decrypts = 0
    real_open = crypto.open_envelope

    def counting_open(*a: Any, **kw: Any) -> bytes:
        nonlocal decrypts
        decrypts += 1
        return real_open(*a, **kw)

    # counted where it is called: pmap.credentials.service is the only module that may decrypt
    with patch.object(cred_service, "open_envelope", counting_open):
        app = create_app(settings)
        with served(app) as base, httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
            # collect cursors of every page, then time random pages (first pages are not special)
            cursors: list[str | None] = [None]
            while True:
                params: dict[str, Any] = {"limit": 100, **({"cursor": cursors[-1]} if cursors[-1] else {})}
                page = client.get("/api/v1/integrations", params=params).json()
                if not page["next_cursor"]:
                    break
                cursors.append(page["next_cursor"])
            assert len(cursors) == N_ROWS // 100, len(cursors)
            rng = random.Random(7)
            times = []
            for _ in range(N_REQUESTS):
                c = rng.choice(cursors)
                t0 = time.perf_counter()
                r = client.get("/api/v1/integrations", params={"limit": 100, **({"cursor": c} if c else {})})
                times.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and len(r.json()["items"]) == 100
        close_hsm(app.state.pmap.keys)  # the app's lifespan shutdown leaves its PKCS#11 session open
    print(f"  list 100/page over {N_ROWS:,} rows, {label:10s}: {summary(times)}   decrypts: {decrypts}")
    return times, decrypts


def per_call_us(fn: Callable[[], object], n: int) -> float:
    """Microseconds per call: the minimum of 5 timeit repeats of ``n`` calls."""
    return min(timeit.repeat(fn, number=n, repeat=5)) / n * 1e6


def content_cipher(keys: KeyStore, env: dict[str, Any], aad: bytes) -> AESGCM:
    """The cipher an envelope's content is sealed under: its data key, unwrapped (version 2), or the keyring key
    (version 1). For bare baselines: opens nothing itself."""
    version, ref = envelope_kek(env)
    if version == crypto.LEGACY_ENVELOPE:
        assert keys.keyring is not None
        return keys.keyring.aead(ref.id)
    return keys.data_cipher(ref, binascii.a2b_base64(env["dk"]), aad)


def resolve_call(keys: KeyStore, env: dict[str, Any], rid: uuid.UUID) -> Callable[[], None]:
    """One credential resolve of integration ``rid`` holding ``env``, audit write left out (a null sink)."""

    class Row:
        id = rid
        organization_id = uuid.uuid4()
        encrypted_credentials = env
        encrypted_webhook_secret = None

    resolver = CredentialResolver(keys, _NullAudit())
    actor = Actor("system", "bench", Row.organization_id)

    def resolve() -> None:
        with resolver.resolve(Row, purpose=Purpose.SYNC, actor=actor) as r:
            r.values["access_key"]

    return resolve


def bench_resolve() -> None:
    key = generate_key()
    keys = load_keys(Settings(platform_key=key))
    rid = uuid.uuid4()
    env = seal_credentials(keys, rid, CREDS)
    assert env is not None
    aad = CREDS_AAD + rid.bytes
    # the content is under the envelope's own data key (version 2), not the keyring key: unwrapped once here
    aes = content_cipher(keys, env, aad)
    nonce, ct = binascii.a2b_base64(env["n"]), binascii.a2b_base64(env["ct"])

    def bare_raw() -> None:
        aes.decrypt(nonce, ct, aad)

    def bare() -> None:  # the same stored bytes: base64 nonce and ciphertext, opened with AES-GCM
        aes.decrypt(binascii.a2b_base64(env["n"]), binascii.a2b_base64(env["ct"]), aad)

    n = 50_000
    raw_us = per_call_us(bare_raw, n)
    bare_us = per_call_us(bare, n)
    resolve_us = per_call_us(resolve_call(keys, env, rid), n)
    print(f"  AES-GCM decrypt of raw nonce+ciphertext     : {raw_us:6.2f} µs")
    print(f"  bare AES-GCM open of the stored envelope    : {bare_us:6.2f} µs  (base64 nonce+ciphertext, decrypt)")
    print(f"  credential resolve (audit write left out)   : {resolve_us:6.2f} µs  = "
          f"{resolve_us / bare_us:.2f}x the bare open, {resolve_us / raw_us:.1f}x the raw decrypt "
          "(version 2 envelope under the keyring KEK, data key cached)")


def main() -> None:
    print("PMAP issue 2 benchmark: integrations listing and credential resolve")
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_key()
        bench_list("SQLite", Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}", data_dir=Path(tmp),
                                      platform_key=key))
        with pg_schema() as url:
            bench_list("PostgreSQL", Settings(database_url=url, data_dir=Path(tmp), platform_key=key))
    bench_resolve()


if __name__ == "__main__":
    main()
