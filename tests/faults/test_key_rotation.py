"""A key rotation killed with SIGKILL in the middle of a batch, and run again, while a server keeps resolving every
integration's secrets (see the package's conftest for what it proves).

The rotation runs on a database of its own in the suite's cluster, with its own ``pmapctl serve``: the keys change
under it (a keyring file, then the keyring and a SoftHSM2 token, then the token alone), which the suite's shared
server, sealed under its platform key, must not see. The kill lands inside a batch for certain without any hook in
PMAP: the test holds a row lock (``FOR SHARE``) on one integration of the third batch, so that batch's writes wait
on it, uncommitted, until the rotation process is dead.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bench.softhsm import SoftHsmToken, available, make_token
from pmap.core.crypto import KekRef, Keyring, KeyStore, decode_key, envelope_kek, generate_key
from pmap.credentials.models import KeyringCanary, KeyRotation
from pmap.credentials.rotation import envelopes_by_key
from pmap.credentials.service import WebhookSecrets, seal_credentials, seal_webhook_secrets
from pmap.integrations.models import Integration
from pmap_sandbox.server import SandboxServer
from tests.webhooks.conftest import integration_body

from .conftest import ROOT, PgCluster, Serve, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.postgres,
              pytest.mark.skipif(not available(), reason="SoftHSM2 is not installed (scripts/ensure-softhsm.sh)")]

#: integrations seeded under the keyring (every WEBHOOK_EVERY-th a github_issues one with a webhook secret too)
INTEGRATIONS, WEBHOOK_EVERY = 300, 5
#: integrations per committed batch of the rotation; the test's row lock holds up the third batch
BATCH, LOCKED_INDEX = 20, 2 * 20 + 7
OLD, NEW = "keyring:k1 (version 2)", "pkcs11:kek-1 (version 2)"
PROGRESS = re.compile(r"^\s+([\d,]+)/([\d,]+) integrations$")


@dataclass
class KeyedServe(Serve):
    """A :class:`Serve` whose keys are ``keys_env`` (a keyring file, PKCS#11 settings, or both), not a platform key."""

    keys_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = super().env()
        del env["PMAP_PLATFORM_KEY"]
        env.update(self.keys_env)
        env["PYTHONUNBUFFERED"] = "1"  # progress lines reach the test as they are printed
        return env


@dataclass
class Seeded:
    ids: list[str]  # every integration, by id (the rotation's order)
    hooks: dict[str, str]  # integration id -> its webhook secret, as revealed when seeded


@pytest.fixture
def rotation_db(pg_cluster: PgCluster) -> Iterator[str]:
    """A database of this test's own in the suite's cluster; its URL."""
    name = f"rotation_{uuid.uuid4().hex[:8]}"
    admin = create_engine(pg_cluster.url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_cluster.url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SoftHsmToken:
    """A SoftHSM2 token of its own, with no key yet (kek-1 is made through ``pmapctl keys create-kek``, so the
    library is never loaded in the test process); ``SOFTHSM2_CONF`` of the test process is restored after."""
    monkeypatch.delenv("SOFTHSM2_CONF", raising=False)  # make_token sets it: undone at teardown
    return make_token(tmp_path / "hsm")


@pytest.fixture
def keyed(rotation_db: str, tmp_path: Path) -> Iterator[KeyedServe]:
    """``pmapctl serve`` on the test's database, its keys a keyring file holding k1 alone."""
    keyring = tmp_path / "keyring.json"
    Keyring.single(decode_key(generate_key(), source="test"), "k1").to_file(keyring)
    server = KeyedServe(tmp_path / "serve", rotation_db, keys_env={"PMAP_KEYRING_FILE": str(keyring)})
    server.tmp.mkdir()
    migrated = server.cli("db", "upgrade")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    server.start()
    try:
        yield server
    finally:
        server.stop()


def seed(serve: KeyedServe, sandbox: SandboxServer, db: Engine) -> Seeded:
    """INTEGRATIONS integrations sealed under the keyring, every WEBHOOK_EVERY-th a github_issues one with a webhook
    secret. One of each vendor is made through the API; the rest are inserted directly as the API would store them
    (the API's row of that vendor with another id, name and credentials, sealed with PMAP's own seal functions
    under the same keyring): the same rows in a fraction of the time."""
    templates: dict[str, tuple[Integration, str | None]] = {}
    hooks: dict[str, str] = {}
    for vendor in ("tenable_vm", "github_issues"):
        r = serve.api("POST", "/integrations", json=integration_body(vendor, sandbox.base_url))
        assert r.status_code == 201, r.text
        iid = str(r.json()["id"])
        secret = None
        if vendor == "github_issues":
            assert serve.api("POST", f"/integrations/{iid}/webhook/generate").status_code == 201
            revealed = serve.api("POST", f"/integrations/{iid}/webhook/reveal")
            assert revealed.status_code == 200, revealed.text
            secret = hooks[iid] = str(revealed.json()["secret"])
        with Session(db) as session:
            templates[vendor] = (session.get_one(Integration, uuid.UUID(iid)), secret)
    keys = KeyStore.of(Keyring.from_file(Path(serve.keys_env["PMAP_KEYRING_FILE"])))
    rows = []
    for n in range(len(templates), INTEGRATIONS):
        vendor = "github_issues" if n % WEBHOOK_EVERY == 0 else "tenable_vm"
        template, secret = templates[vendor]
        body = integration_body(vendor, sandbox.base_url)
        row_id = uuid.uuid4()
        hook = None
        if secret is not None:
            hooks[str(row_id)] = secrets.token_hex(len(secret) // 2)
            hook = seal_webhook_secrets(keys, row_id, WebhookSecrets(hooks[str(row_id)], None, None))
        rows.append(Integration(
            id=row_id, organization_id=template.organization_id, name=body["name"], vendor=vendor,
            category=template.category, connection=template.connection,
            encrypted_credentials=seal_credentials(keys, row_id, body["credentials"]),
            credential_fields=sorted(body["credentials"]), encrypted_webhook_secret=hook,
            webhook_state=template.webhook_state))
    with Session(db) as session:
        session.add_all(rows)
        session.commit()
        ids = [str(i) for i in session.scalars(select(Integration.id).order_by(Integration.id))]
    assert len(ids) == INTEGRATIONS
    return Seeded(ids, hooks)


def opens(client: httpx.Client, seeded: Seeded, iid: str) -> str | None:
    """Why the server did not resolve one integration's secrets (a connection test against the sandbox, which
    accepts only the seeded credentials, and its webhook secret revealed as seeded); None when it did."""
    tested = client.post(f"/integrations/{iid}/test")
    if tested.status_code != 200 or tested.json().get("ok") is not True:
        return f"{iid}: test {tested.status_code} {tested.text[:300]}"
    if iid in seeded.hooks:
        revealed = client.post(f"/integrations/{iid}/webhook/reveal")
        if revealed.status_code != 200 or revealed.json().get("secret") != seeded.hooks[iid]:
            return f"{iid}: webhook reveal {revealed.status_code}"
    return None


def api_client(serve: Serve) -> httpx.Client:
    return httpx.Client(base_url=f"{serve.base_url}/api/v1", headers=serve.headers, timeout=60, trust_env=False)


def all_open(serve: Serve, seeded: Seeded, ids: list[str] | None = None) -> None:
    """Every integration of ``ids`` (all by default) resolves through the server: 6 at once, so with the
    :class:`Resolver` running they stay under PMAP_OUTBOUND_CONCURRENCY_PER_ORG (8)."""
    with api_client(serve) as client, ThreadPoolExecutor(max_workers=6) as pool:
        problems = [p for p in pool.map(lambda iid: opens(client, seeded, iid), ids or seeded.ids) if p]
    assert not problems, problems[:10]


class Resolver(threading.Thread):
    """A client resolving secrets through the server over and over (``targets``, in turn) until stopped; every
    answer must be a success."""

    def __init__(self, serve: Serve, seeded: Seeded, targets: list[str]) -> None:
        super().__init__(daemon=True)
        self.serve, self.seeded, self.targets = serve, seeded, targets
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.ok = 0
        self.problems: list[str] = []

    def retarget(self, targets: list[str]) -> None:
        """Resolve ``targets`` from now on."""
        with self.lock:
            self.targets = targets

    def successes(self) -> int:
        with self.lock:
            return self.ok

    def run(self) -> None:
        n = 0
        with api_client(self.serve) as client:
            while not self.stopped.is_set():
                with self.lock:
                    iid = self.targets[n % len(self.targets)]
                n += 1
                try:
                    problem = opens(client, self.seeded, iid)
                except httpx.HTTPError as exc:
                    problem = f"{iid}: {type(exc).__name__}"
                with self.lock:
                    if problem is None:
                        self.ok += 1
                    else:
                        self.problems.append(problem)

    def stop(self) -> int:
        self.stopped.set()
        self.join(90)
        assert not self.is_alive()
        return self.ok


class Rotation:
    """``pmapctl keys rotate`` as a process of its own; its stderr read line by line as it comes."""

    def __init__(self, serve: Serve, *args: str) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", "keys", "rotate", *args], cwd=ROOT,
                                     env=serve.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def progress(self) -> list[tuple[int, int]]:
        return [(int(m[1].replace(",", "")), int(m[2].replace(",", "")))
                for line in list(self.lines) if (m := PROGRESS.match(line))]

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.reader.join(10)

    def wait(self, seconds: float = 120) -> int:
        code = self.proc.wait(seconds)
        self.reader.join(10)
        return code


def kek_of(envelope: Any) -> str:
    version, ref = envelope_kek(envelope)
    return f"{ref} (version {version})"


def keys_by_row(db: Engine) -> dict[str, set[str]]:
    """Integration id -> the keys its envelopes are under."""
    with Session(db) as session:
        rows = session.execute(select(Integration.id, Integration.encrypted_credentials,
                                      Integration.encrypted_webhook_secret)).all()
    return {str(iid): {kek_of(e) for e in (creds, hook) if e is not None} for iid, creds, hook in rows}


def by_key(db: Engine) -> Counter[str]:
    with Session(db) as session:
        return envelopes_by_key(session)


def run(db: Engine) -> KeyRotation:
    with Session(db) as session:
        runs = list(session.scalars(select(KeyRotation).order_by(KeyRotation.id)))
    assert len(runs) == 1, "a rerun continues the killed run: no second run"
    return runs[0]


def verified(serve: Serve, *expected: str) -> Counter[str]:
    """``pmapctl keys verify`` passes; the envelopes it counts per key (only the ``expected`` keys)."""
    done = serve.cli("keys", "verify")
    assert done.returncode == 0, done.stdout + done.stderr
    counts: Counter[str] = Counter()
    for line in done.stderr.splitlines():
        if m := re.match(r"^\s+([\d,]+)\s+(\S.*)$", line):
            counts[m[2]] = int(m[1].replace(",", ""))
    assert set(counts) == set(expected), done.stderr
    return counts


def lock_waiters(conn: Connection) -> int:
    """Backends of the test's database waiting on a lock (the rotation's write behind the test's row lock)."""
    return int(conn.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                 "AND wait_event_type = 'Lock'")).scalar_one())


def test_rotation_killed_during_a_batch_and_run_again(keyed: KeyedServe, sandbox: SandboxServer,
                                                      token: SoftHsmToken) -> None:
    started = last = time.monotonic()
    laps: list[str] = []

    def lap(what: str) -> None:
        nonlocal last
        now = time.monotonic()
        laps.append(f"{what} {now - last:.1f} s")
        last = now

    db = create_engine(keyed.database_url, poolclass=NullPool)
    try:
        seeded = seed(keyed, sandbox, db)
        envelopes = INTEGRATIONS + len(seeded.hooks)
        assert set().union(*keys_by_row(db).values()) == {OLD}
        lap("seeded")
        # the README's order: every process holds the old and the new key before the rotation starts
        keyed.keys_env = {**keyed.keys_env, **token.env("kek-1")}
        created = keyed.cli("keys", "create-kek", "--label", "kek-1")
        assert created.returncode == 0, created.stdout + created.stderr
        keyed.stop()
        keyed.start()
        lap("restarted with both keys")
        locked_id = seeded.ids[LOCKED_INDEX]
        third_batch = set(seeded.ids[2 * BATCH:3 * BATCH])
        # until the kill, the client stays off the third batch: its rows wait on the test's lock
        resolver = Resolver(keyed, seeded, [i for i in seeded.ids if i not in third_batch])
        resolver.start()
        with db.connect() as holder:
            holder.execute(select(Integration.id).where(Integration.id == uuid.UUID(locked_id)).with_for_update(
                read=True))  # FOR SHARE: reads go on, the rotation's write of this row waits
            before_first = resolver.successes()
            first = Rotation(keyed, "--batch", str(BATCH))
            wait_for(lambda: len(first.progress) >= 2 and lock_waiters(holder) > 0, 60,
                     "the rotation's third batch waits on the test's row lock",
                     detail=lambda: first.stderr + keyed.log_text())
            assert first.proc.poll() is None, first.stderr
            assert first.progress == [(BATCH, INTEGRATIONS), (2 * BATCH, INTEGRATIONS)], first.stderr
            first.kill()
            during_first = resolver.successes() - before_first
            holder.rollback()  # the lock goes; the dead client's backend ends and its batch rolls back
        with db.connect() as conn:
            wait_for(lambda: lock_waiters(conn) == 0, 30, "the killed rotation's backend is gone")
        resolver.retarget(seeded.ids)
        lap("killed")

        # half done: the run is unfinished after its last committed batch, and every envelope opens
        killed = run(db)
        assert killed.finished_at is None and killed.outcome is None
        assert killed.done == 2 * BATCH and killed.done % BATCH == 0 and killed.done < killed.total == INTEGRATIONS
        assert str(killed.cursor) == seeded.ids[2 * BATCH - 1]
        rows = keys_by_row(db)
        assert all(rows[i] == {NEW} for i in seeded.ids[:2 * BATCH]), "the committed batches moved"
        assert all(rows[i] == {OLD} for i in seeded.ids[2 * BATCH:]), "the killed batch left nothing"
        counts = by_key(db)
        assert counts[OLD] > 0 and counts[NEW] > 0, counts
        assert verified(keyed, OLD, NEW) == counts  # audit keys moved first: they are under the new key already
        half = [*seeded.ids[2 * BATCH - 5:2 * BATCH + 5], *seeded.hooks]
        all_open(keyed, seeded, half)  # the server resolves both sides of the cut
        lap("checked half done")

        # run again: it continues after the last committed batch and moves the rest
        before_second = resolver.successes()
        second = Rotation(keyed, "--batch", str(BATCH))
        assert second.wait() == 0, second.stderr
        during_second = resolver.successes() - before_second
        lap("rerun")
        resolver.stop()
        assert not resolver.problems, resolver.problems[:10]
        assert during_first > 0 and during_second > 0, (during_first, during_second)
        first_moved = sum(1 + (i in seeded.hooks) for i in seeded.ids[:2 * BATCH])
        assert (f"continued an interrupted rotation after {2 * BATCH} integrations (its committed batches had "
                f"re-wrapped {first_moved} data key(s) and re-sealed 0 envelope(s))") in second.stderr, second.stderr
        moved = sum(1 + (i in seeded.hooks) for i in seeded.ids[2 * BATCH:])
        assert f"re-wrapped {moved} data key(s) and re-sealed 0 envelope(s) under" in second.stderr, second.stderr
        walked = [n for n, _ in second.progress]
        assert walked and walked[0] == 3 * BATCH and walked[-1] == INTEGRATIONS, second.stderr
        finished = run(db)
        assert finished.outcome == "finished" and finished.finished_at is not None
        assert finished.done == INTEGRATIONS
        assert set().union(*keys_by_row(db).values()) == {NEW}
        total = verified(keyed, NEW)[NEW]
        assert total == by_key(db)[NEW] and total > envelopes  # the integrations' envelopes and the audit keys
        with Session(db) as session:
            assert [KekRef.parse(k) for k in session.scalars(select(KeyringCanary.key_id))] == [
                KekRef("pkcs11", "kek-1")], "the old key's canary went: it can be retired"

        # the old key retired: the server starts with the token alone and every secret opens
        keyed.stop()
        keyed.keys_env = token.env("kek-1")
        assert not (keyed.tmp / "data" / "keyring.json").exists(), "no development keyring to fall back on"
        keyed.start()
        lap("restarted with the token alone")
        all_open(keyed, seeded)
        lap("all open")
        assert verified(keyed, NEW)[NEW] == total
        audit = keyed.cli("audit", "verify")
        assert audit.returncode == 0, audit.stdout + audit.stderr
        lap("verified")
        print(f"rotation fault: {time.monotonic() - started:.1f} s ({', '.join(laps)}); resolves during the killed run "
              f"{during_first}, during the rerun {during_second}; stderr of the rerun:\n{second.stderr}")
    finally:
        db.dispose()
