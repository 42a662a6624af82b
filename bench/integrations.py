"""Issue 2 benchmark: listing 10,000 integrations (SQLite, PostgreSQL) and one credential resolve.

Prints list latency (median, p95) of 100-item pages through the real HTTP API, with the number of
decrypts the listing caused, and the cost of one credential resolve (audit write left out) beside
a bare AES-GCM decrypt of the same envelope bytes.

    python -m bench.integrations
"""

from __future__ import annotations

import base64
import binascii
import random
import tempfile
import time
import timeit
import uuid
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
from pmap.core.crypto import generate_key
from pmap.core.db import make_engine, make_session_factory, transaction, utcnow
from pmap.core.seams import Actor, Purpose
from pmap.core.settings import Settings
from pmap.credentials import service as cred_service
from pmap.credentials.keyring import load_keys
from pmap.credentials.service import CredentialResolver, seal_credentials
from pmap.integrations.models import Integration
from pmap.migrations import upgrade

N_ROWS = 10_000
N_REQUESTS = 300


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
            encrypted_credentials=seal_credentials(keys, rid, {"access_key": "a" * 64, "secret_key": "s" * 64}),
            credential_fields=["access_key", "secret_key"], webhook_state={}, allow_unsigned_webhooks=False,
            enabled=True, created_at=base, updated_at=base,
        ))
    with engine.begin() as conn:
        for chunk in range(0, N_ROWS, 1000):
            conn.execute(insert(Integration), rows[chunk:chunk + 1000])
    engine.dispose()
    return token, org_id


def bench_list(label: str, settings: Settings) -> None:
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
    print(f"  list 100/page over {N_ROWS:,} rows, {label:10s}: {summary(times)}   decrypts: {decrypts}")


def bench_resolve() -> None:
    key = base64.b64decode(generate_key())
    keyring = crypto.Keyring.single(key, "k1")
    rid = uuid.uuid4()
    creds = {"access_key": "a" * 64, "secret_key": "s" * 64}
    env = seal_credentials(crypto.KeyStore.of(keyring), rid, creds)
    assert env is not None

    class Row:
        id = rid
        organization_id = uuid.uuid4()
        encrypted_credentials = env
        encrypted_webhook_secret = None

    resolver = CredentialResolver(crypto.KeyStore.of(keyring), _NullAudit())
    actor = Actor("system", "bench", Row.organization_id)
    aes = AESGCM(key)
    nonce, ct = base64.b64decode(env["n"]), base64.b64decode(env["ct"])
    aad = crypto.aad_prefix("integrations", "encrypted_credentials") + rid.bytes

    def bare_raw() -> None:
        aes.decrypt(nonce, ct, aad)

    def bare() -> None:  # the same stored bytes: base64 nonce and ciphertext, opened with AES-GCM
        aes.decrypt(binascii.a2b_base64(env["n"]), binascii.a2b_base64(env["ct"]), aad)

    def resolve() -> None:
        with resolver.resolve(Row, purpose=Purpose.SYNC, actor=actor) as r:
            r.values["access_key"]

    n = 50_000
    raw_us = min(timeit.repeat(bare_raw, number=n, repeat=5)) / n * 1e6
    bare_us = min(timeit.repeat(bare, number=n, repeat=5)) / n * 1e6
    resolve_us = min(timeit.repeat(resolve, number=n, repeat=5)) / n * 1e6
    print(f"  AES-GCM decrypt of raw nonce+ciphertext     : {raw_us:6.2f} µs")
    print(f"  bare AES-GCM open of the stored envelope    : {bare_us:6.2f} µs  (base64 nonce+ciphertext, decrypt)")
    print(f"  credential resolve (audit write left out)   : {resolve_us:6.2f} µs  = "
          f"{resolve_us / bare_us:.2f}x the bare open, {resolve_us / raw_us:.1f}x the raw decrypt")


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
