"""A long import does not lock other writers out; a write that truly cannot happen answers 503 + Retry-After.

The import is made long by a parser that stops half-way through the report (after several batches
were handed to the writer) until the test lets it go on: while it waits, a signed webhook delivery,
a token creation and an integration PATCH must each get through, and none of the import's findings
may be visible yet.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from pmap.app import create_app
from pmap.auth.models import ApiToken
from pmap.core.settings import Settings
from pmap.findings import importer, staging
from pmap.findings.formats.registry import report_formats
from pmap.findings.models import Finding, ImportRecord
from pmap.webhooks.models import WebhookDelivery
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, findings, nessus_report, upload
from tests.webhooks.conftest import create_integration as create_hook_integration
from tests.webhooks.conftest import payload, signed

ITEMS = [{"plugin": n, "host": f"10.0.{n // 200}.{n % 200}", "severity": 2} for n in range(60)]
PAUSE_AT = 30  # findings parsed before the parser waits (six batches of five already handed on)
# not the name: on PostgreSQL a rename (a column of a unique index) waits for the running import's
# foreign-key locks on the integration row until it commits
CHANGE = {"severity_threshold": "low"}


@dataclasses.dataclass
class Paused:
    """A parser stopped mid-report: ``reached`` once it waits, ``release`` lets it go on."""

    reached: threading.Event = dataclasses.field(default_factory=threading.Event)
    release: threading.Event = dataclasses.field(default_factory=threading.Event)


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[Paused]:
    """Imports of nessus reports pause after PAUSE_AT findings; batches are five findings."""
    state = Paused()
    real = report_formats()["nessus"]

    def read(report: Any) -> Iterator[Any]:
        for n, finding in enumerate(real.read(report)):
            if n == PAUSE_AT:
                state.reached.set()
                assert state.release.wait(120), "the test never released the import"
            yield finding

    formats = {**dict(report_formats().items()), "nessus": dataclasses.replace(real, read=read)}
    monkeypatch.setattr(importer, "report_formats", lambda: formats)
    monkeypatch.setattr(importer, "BATCH_SIZE", 5)
    yield state
    state.release.set()  # never leave an import thread hanging after a failed assertion


def _hook(api: Api, headers: dict[str, str]) -> tuple[str, str]:
    iid = create_hook_integration(api.client, headers, "github_issues")
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=headers).status_code == 201
    secret = api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=headers).json()["secret"]
    return iid, secret


def _count(api: Api, model: Any, **where: Any) -> int:
    with api.state.sessions() as s:
        query = select(func.count()).select_from(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return int(s.scalar(query) or 0)


def _start_import(api: Api, iid: str, headers: dict[str, str],
                  report: bytes) -> tuple[threading.Thread, dict[str, httpx.Response]]:
    """Upload ``report`` from another thread (the parser pauses half-way); the thread and where its answer lands."""
    answer: dict[str, httpx.Response] = {}
    thread = threading.Thread(target=lambda: answer.setdefault("import", upload(api, iid, report, headers,
                                                                                format="nessus")))
    thread.start()
    return thread, answer


def test_other_writers_get_through_while_an_import_runs(api: Api, admin: dict[str, str], paused: Paused) -> None:
    iid = create_integration(api, admin)
    hook_id, secret = _hook(api, admin)
    thread, answer = _start_import(api, iid, admin, nessus_report(ITEMS))
    try:
        assert paused.reached.wait(60), "the import never reached the pause"
        body = payload("github")
        r = api.client.post(f"/hooks/{hook_id}", content=body, headers=signed("github", body, secret))
        assert r.status_code == 202, r.text
        assert _count(api, WebhookDelivery, integration_id=uuid.UUID(hook_id)) == 1
        r = api.client.post("/api/v1/tokens", json={"name": "made-during-import", "role": "viewer"}, headers=admin)
        assert r.status_code == 201, r.text
        r = api.client.patch(f"/api/v1/integrations/{iid}", json=CHANGE, headers=admin)
        assert r.status_code == 200, r.text
        # atomic: nothing of the running import is visible yet
        assert findings(api, admin, integration_id=iid) == []
        assert _count(api, ImportRecord, integration_id=uuid.UUID(iid)) == 0
        assert thread.is_alive()
    finally:
        paused.release.set()
        thread.join(120)
    r = answer["import"]
    assert r.status_code == 200, r.text
    assert (r.json()["parsed"], r.json()["created"]) == (60, 60)
    assert len(findings(api, admin, integration_id=iid)) == 60


def test_a_failed_import_leaves_nothing_behind_after_other_writes(api: Api, admin: dict[str, str],
                                                                  paused: Paused) -> None:
    """An import that fails after batches were staged and other writers committed imports nothing."""
    iid = create_integration(api, admin)
    thread, answer = _start_import(api, iid, admin, nessus_report(ITEMS)[:-200])  # truncated: fails at the end
    try:
        assert paused.reached.wait(60)
        r = api.client.patch(f"/api/v1/integrations/{iid}", json=CHANGE, headers=admin)
        assert r.status_code == 200, r.text
    finally:
        paused.release.set()
        thread.join(120)
    assert answer["import"].status_code == 422, answer["import"].text
    assert findings(api, admin, integration_id=iid) == []
    assert _count(api, ImportRecord, integration_id=uuid.UUID(iid)) == 0
    assert _count(api, Finding) == 0


def test_one_import_per_stream_while_another_scope_imports_alongside(api: Api, admin: dict[str, str],
                                                                      paused: Paused) -> None:
    """Parity of SQLite with PostgreSQL's stream lock: the same stream answers 409 while an import of it
    runs; another scope of the same integration imports (and publishes) meanwhile."""
    iid = create_integration(api, admin)
    thread, answer = _start_import(api, iid, admin, nessus_report(ITEMS))
    try:
        assert paused.reached.wait(60)
        r = upload(api, iid, nessus_report(ITEMS[:3]), admin, format="nessus")
        assert r.status_code == 409 and "scope 'default' is running" in r.json()["error"]["message"], r.text
        r = upload(api, iid, nessus_report(ITEMS[:3]), admin, format="nessus", scope="dmz")
        assert r.status_code == 200 and r.json()["created"] == 3, r.text
        assert thread.is_alive()
    finally:
        paused.release.set()
        thread.join(120)
    assert answer["import"].status_code == 200 and answer["import"].json()["created"] == 60
    assert upload(api, iid, nessus_report(ITEMS[:3]), admin, format="nessus", resolve="scope").json()["resolved"] == 57


def test_an_integration_deleted_while_its_report_imports_gets_nothing(api: Api, admin: dict[str, str],
                                                                      paused: Paused, db_url: str) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("on PostgreSQL the deletion waits for the import's foreign-key locks")
    iid = create_integration(api, admin)
    thread, answer = _start_import(api, iid, admin, nessus_report(ITEMS))
    try:
        assert paused.reached.wait(60)
        assert api.client.delete(f"/api/v1/integrations/{iid}", headers=admin).status_code == 204
    finally:
        paused.release.set()
        thread.join(120)
    r = answer["import"]
    assert r.status_code == 404 and "deleted while its report was being imported" in r.json()["error"]["message"]
    assert _count(api, Finding) == 0 and _count(api, ImportRecord) == 0


def test_a_write_that_cannot_take_the_lock_answers_503_with_retry_after(
        settings: Settings, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process holds SQLite's write lock past the busy timeout: the receiver, the API and an
    import answer 503 + Retry-After (never 500) and write nothing; once it is free they succeed."""
    if not db_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no database-wide write lock")
    monkeypatch.setattr(staging, "PUBLISH_WAIT_SECONDS", 0.2)
    app = create_app(settings.model_copy(update={"sqlite_busy_timeout": 0.2}))
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client)
        admin = api.token()
        iid = create_integration(api, admin)
        hook_id, secret = _hook(api, admin)
        tokens = _count(api, ApiToken)
        body = payload("github")
        delivery = signed("github", body, secret)
        holder = create_engine(db_url)
        with holder.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # another process writing, and not letting go
            try:
                answers = {
                    "delivery": client.post(f"/hooks/{hook_id}", content=body, headers=delivery),
                    "token": client.post("/api/v1/tokens", json={"name": "t", "role": "viewer"}, headers=admin),
                    "patch": client.patch(f"/api/v1/integrations/{iid}", json=CHANGE, headers=admin),
                    "import": upload(api, iid, nessus_report(ITEMS[:3]), admin, format="nessus"),
                }
            finally:
                conn.rollback()
        holder.dispose()
        for what, r in answers.items():
            assert r.status_code == 503, (what, r.text)
            assert r.headers["Retry-After"].isdigit() and int(r.headers["Retry-After"]) > 0, what
            assert r.json()["error"]["code"] == "service_busy", what
        assert _count(api, WebhookDelivery) == 0 and _count(api, ApiToken) == tokens
        assert _count(api, Finding) == 0 and _count(api, ImportRecord) == 0
        assert client.get(f"/api/v1/integrations/{iid}", headers=admin).json()["severity_threshold"] != "low"
        # the lock is free again: the vendor's retry and the others go through
        assert client.post(f"/hooks/{hook_id}", content=body, headers=delivery).status_code == 202
        assert client.post("/api/v1/tokens", json={"name": "t", "role": "viewer"}, headers=admin).status_code == 201
        assert client.patch(f"/api/v1/integrations/{iid}", json=CHANGE, headers=admin).status_code == 200
        assert upload(api, iid, nessus_report(ITEMS[:3]), admin, format="nessus").json()["created"] == 3
