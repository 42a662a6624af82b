"""Faults against real processes: PMAP serve killed with SIGKILL, and its PostgreSQL restarted, in the middle of an
import's commit, webhook deliveries' intake and a sync's write (see the package's conftest for what it proves)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from pmap.findings.models import Finding
from pmap.webhooks.models import WebhookDelivery
from pmap_sandbox.server import SandboxServer
from tests.findings.pipeline.helpers import nessus_report
from tests.sync.conftest import unique
from tests.webhooks.conftest import integration_body, signed

from .conftest import LEASE_SECONDS, PgCluster, Serve, wait_for

pytestmark = [pytest.mark.faults, pytest.mark.postgres]

#: findings of the large report: enough that its import writes for a few seconds
REPORT_FINDINGS = 20_000
#: findings of the sandbox's vendor feed for the syncs
SYNC_FINDINGS = 6_000
ENDED = ("succeeded", "failed")


@pytest.fixture(scope="module")
def db(pg_cluster: PgCluster) -> Iterator[Engine]:
    """The test's own reads of the cluster: no pool, so a restart of PostgreSQL leaves no dead connection."""
    engine = create_engine(pg_cluster.url, poolclass=NullPool)
    yield engine
    engine.dispose()


def identities(db: Engine, integration_id: str) -> tuple[int, int]:
    """(findings, distinct identities: scope + fingerprint) of an integration."""
    with db.connect() as conn:
        row = conn.execute(select(func.count(), func.count(func.distinct(Finding.scope + "|" + Finding.fingerprint)))
                           .where(Finding.integration_id == uuid.UUID(integration_id))).one()
    return int(row[0]), int(row[1])


def big_report(n: int = REPORT_FINDINGS) -> bytes:
    return nessus_report([{"host": f"10.{i // 60000}.{i // 250 % 240}.{i % 250 + 1}", "plugin": 10_000 + i % 97,
                           "port": 443, "severity": 1 + i % 4} for i in range(n)])


def tenable(serve: Serve, sandbox: SandboxServer) -> str:
    """A tenable_vm integration against the sandbox, with credentials the sandbox accepts; its id."""
    body = {"name": f"tenable-{uuid.uuid4().hex[:8]}", "vendor": "tenable_vm",
            "connection": {"base_url": sandbox.url("tenable_vm")},
            "credentials": {"access_key": unique(), "secret_key": unique("key")}}
    r = serve.api("POST", "/integrations", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def credentials_open(serve: Serve) -> None:
    """Every integration's credentials still open (`pmapctl keys verify`, and a connection test of each through the
    API against the sandbox); and the audit chain verifies, the events written around the fault included
    (`pmapctl audit verify`)."""
    r = serve.api("GET", "/integrations", params={"limit": 200})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert items
    for item in items:
        tested = serve.api("POST", f"/integrations/{item['id']}/test")
        assert tested.status_code == 200 and tested.json()["ok"] is True, (item["vendor"], tested.text)
    opened = serve.cli("keys", "verify")
    assert opened.returncode == 0, opened.stdout + opened.stderr
    verified = serve.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def ended(serve: Serve, job_id: str, seconds: float = 120) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        job = serve.job(job_id)
        return job if job["status"] in ENDED else None

    result: dict[str, Any] = wait_for(done, seconds, f"job {job_id} ends", every=0.2,
                                      detail=lambda: f"{serve.job(job_id)}\n{serve.log_text()}")
    return result


def writing(serve: Serve, job_id: str) -> dict[str, Any]:
    """The job once its progress shows it writing findings."""
    def check() -> dict[str, Any] | None:
        job = serve.job(job_id)
        assert job["status"] not in ENDED, job
        progress = job.get("progress") or {}
        return job if job["status"] == "running" and progress.get("findings", 0) > 0 else None

    result: dict[str, Any] = wait_for(check, 120, f"job {job_id} writes", every=0.05,
                                      detail=lambda: serve.log_text())
    return result


def upload(serve: Serve, iid: str, report: bytes) -> str:
    r = serve.api("POST", f"/integrations/{iid}/imports", files={"file": ("big.nessus", report)})
    assert r.status_code == 202, r.text
    return str(r.json()["job"]["id"])


def test_serve_killed_during_an_imports_commit(running: Serve, sandbox: SandboxServer, db: Engine) -> None:
    iid = tenable(running, sandbox)
    report = big_report()
    job_id = upload(running, iid, report)
    seen = writing(running, job_id)
    assert seen["progress"]["phase"] == "importing"
    running.kill()
    assert identities(db, iid) == (0, 0), "the killed attempt's import is one transaction: nothing of it stays"
    running.start()  # its start resumes the jobs of a process that is gone
    job = ended(running, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2, "the killed attempt counts"
    assert job["result"]["created"] == REPORT_FINDINGS
    assert identities(db, iid) == (REPORT_FINDINGS, REPORT_FINDINGS)
    again = ended(running, upload(running, iid, report))
    assert again["status"] == "succeeded" and again["result"]["created"] == 0, again
    assert identities(db, iid) == (REPORT_FINDINGS, REPORT_FINDINGS), "a re-import gives the same set"
    credentials_open(running)


def stored(db: Engine, integration_id: str) -> list[tuple[str | None, str]]:
    """(delivery id, outcome) of every delivery row of an integration."""
    with db.connect() as conn:
        rows = conn.execute(select(WebhookDelivery.delivery_id, WebhookDelivery.outcome)
                            .where(WebhookDelivery.integration_id == uuid.UUID(integration_id))).all()
    return [(r[0], r[1]) for r in rows]


#: deliveries sent while the server is killed, and how many 2xx answers come before the kill
DELIVERIES, KILL_AFTER = 160, 30


def test_serve_killed_during_webhook_intake(running: Serve, sandbox: SandboxServer, db: Engine) -> None:
    r = running.api("POST", "/integrations", json=integration_body("github_issues", sandbox.base_url))
    assert r.status_code == 201, r.text
    iid = str(r.json()["id"])
    assert running.api("POST", f"/integrations/{iid}/webhook/generate").status_code < 300
    secret = running.api("POST", f"/integrations/{iid}/webhook/reveal").json()["secret"]
    ids = [f"gh-{uuid.uuid4().hex}" for _ in range(DELIVERIES)]
    bodies = {d: (b'{"action":"opened","issue":{"number":%d,"state":"open"},'
                  b'"repository":{"full_name":"acme/webapp"}}' % n) for n, d in enumerate(ids)}
    answers: dict[str, int | None] = {}
    lock = threading.Lock()
    enough = threading.Event()

    def deliver(delivery_id: str) -> int | None:
        body = bodies[delivery_id]
        headers = signed("github", body, secret, delivery_id=delivery_id, event="issues")
        try:
            status: int | None = httpx.post(f"{running.base_url}/hooks/{iid}", content=body, headers=headers,
                                            timeout=30, trust_env=False).status_code
        except httpx.HTTPError:  # the server died under this request: not answered
            status = None
        return status

    def send(delivery_id: str) -> None:
        status = deliver(delivery_id)
        with lock:
            answers[delivery_id] = status
            if sum(1 for s in answers.values() if s is not None and 200 <= s < 300) >= KILL_AFTER:
                enough.set()

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(send, d) for d in ids]
        assert enough.wait(120), f"never {KILL_AFTER} deliveries answered: {answers}\n{running.log_text()}"
        running.kill()  # requests in flight: some answered, some cut, some never connected
        for f in futures:
            f.result()
    answered = {d for d, s in answers.items() if s is not None and 200 <= s < 300}
    refused = {d: s for d, s in answers.items() if s is not None and not 200 <= s < 300}
    assert not refused, f"only 2xx or no answer at all: {refused}"
    assert KILL_AFTER <= len(answered) < DELIVERIES, "the kill fell in the middle of the intake"
    rows = stored(db, iid)
    kept = [d for d, outcome in rows if outcome != "duplicate"]
    assert len(kept) == len(set(kept)), "no delivery stored twice"
    assert answered <= set(kept), f"deliveries answered 2xx and lost: {answered - set(kept)}"
    running.start()
    # the vendor sends everything again (a retry of what it got no 2xx for; a replay of the rest): each delivery is
    # stored once, the second copies are acknowledged as duplicates
    with ThreadPoolExecutor(max_workers=8) as pool:
        again = dict(zip(ids, pool.map(deliver, ids), strict=True))
    assert all(again[d] in (200, 202) for d in ids), again
    rows = stored(db, iid)
    kept = [d for d, outcome in rows if outcome != "duplicate"]
    assert sorted(str(d) for d in kept) == sorted(ids), "every delivery stored exactly once"
    # rows stored before the kill and not yet processed stay "accepted": the processor sweeps rows accepted over
    # a minute ago when it next starts (pmap/webhooks/processor.py, STALE_AFTER); not waited for here (time)
    assert {outcome for _, outcome in stored(db, iid)} <= {"accepted", "processed", "duplicate"}
    assert running.readyz() == 200
    credentials_open(running)


@pytest.fixture
def seeded(sandbox: SandboxServer) -> Iterator[SandboxServer]:
    """The sandbox's tenable_vm feed with SYNC_FINDINGS findings, every vendor request answered 0.2 s late, so a
    sync writes for seconds whatever the machine's speed."""
    httpx.post(f"{sandbox.base_url}/_sandbox/reset", timeout=10).raise_for_status()
    httpx.post(f"{sandbox.base_url}/_sandbox/seed/tenable_vm", json={"count": SYNC_FINDINGS, "fixed": [0, 1]},
               timeout=30).raise_for_status()
    httpx.post(f"{sandbox.base_url}/_sandbox/latency", json={"seconds": 0.2}, timeout=10).raise_for_status()
    try:
        yield sandbox
    finally:
        httpx.post(f"{sandbox.base_url}/_sandbox/latency", json={"seconds": 0}, timeout=10).raise_for_status()


def start_sync(serve: Serve, iid: str) -> str:
    r = serve.api("POST", f"/integrations/{iid}/sync")
    assert r.status_code == 202, r.text
    return str(r.json()["job"]["id"])


def test_serve_killed_during_a_syncs_write(running: Serve, seeded: SandboxServer, db: Engine) -> None:
    iid = tenable(running, seeded)
    job_id = start_sync(running, iid)
    writing(running, job_id)
    running.kill()
    assert identities(db, iid) == (0, 0), "a sync is one transaction: the killed attempt left nothing"
    running.start()
    job = ended(running, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert job["result"]["created"] == SYNC_FINDINGS, job["result"]
    assert identities(db, iid) == (SYNC_FINDINGS, SYNC_FINDINGS)
    credentials_open(running)


def clear_state(serve: Serve, job_id: str) -> dict[str, Any]:
    """The job's end after a fault: succeeded (a retry counts in its attempts) or failed with a reason; never
    left running (ended() waits well past the lease)."""
    job = ended(serve, job_id, seconds=120 + 10 * LEASE_SECONDS)
    if job["status"] == "failed":
        assert job["error"] and job["error"]["code"] and job["error"]["message"], job
    return job


def test_postgres_restarted_during_an_import(running: Serve, sandbox: SandboxServer, db: Engine,
                                             pg_cluster: PgCluster) -> None:
    iid = tenable(running, sandbox)
    report = big_report()
    job_id = upload(running, iid, report)
    writing(running, job_id)
    pg_cluster.restart()
    job = clear_state(running, job_id)
    wait_for(lambda: running.readyz() == 200, 60, "/readyz 200 again", detail=running.log_text)
    count, distinct = identities(db, iid)
    assert count == distinct, "no finding twice"
    if job["status"] == "succeeded":
        assert count == REPORT_FINDINGS, job
    else:
        assert count == 0, "a failed import leaves nothing"
        assert job["error"]["code"] != "report_rejected", f"the report is sound: the database went away {job}"
    again = ended(running, upload(running, iid, report))
    assert again["status"] == "succeeded", again
    assert identities(db, iid) == (REPORT_FINDINGS, REPORT_FINDINGS)
    credentials_open(running)


def test_postgres_restarted_during_a_sync(running: Serve, seeded: SandboxServer, db: Engine,
                                          pg_cluster: PgCluster) -> None:
    iid = tenable(running, seeded)
    job_id = start_sync(running, iid)
    writing(running, job_id)
    pg_cluster.restart()
    job = clear_state(running, job_id)
    wait_for(lambda: running.readyz() == 200, 60, "/readyz 200 again", detail=running.log_text)
    count, distinct = identities(db, iid)
    assert count == distinct, "no finding twice"
    assert count == (SYNC_FINDINGS if job["status"] == "succeeded" else 0), job
    again = ended(running, start_sync(running, iid))
    assert again["status"] == "succeeded", again
    assert identities(db, iid) == (SYNC_FINDINGS, SYNC_FINDINGS)
    credentials_open(running)
