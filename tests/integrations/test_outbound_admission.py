"""Outbound operations are admitted up to a bound per organization and in total (429 + Retry-After
beyond it), so slow vendors cannot take the worker threads reads, receivers and health checks need."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

import pmap.app
from pmap.auth.service import get_or_create_org
from pmap.core.concurrency import RESERVED_THREADS, WORKER_THREADS, OutboundSlots
from pmap.core.db import transaction
from pmap.core.errors import RateLimited
from pmap.core.settings import Settings
from tests.conftest import Api
from tests.loopback_receiver import serve_handler
from tests.webhooks.conftest import Served, integration_body, payload, served, signed  # noqa: F401 - fixture

WAIT = 60.0  # generous bound against hangs, never a timing assertion


@dataclass
class Gate:
    """A loopback vendor that holds every request until :meth:`open` (counts the ones waiting)."""

    url: str
    arrived: int = 0
    opened: threading.Event = field(default_factory=threading.Event)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_arrived(self, count: int) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: self.arrived >= count, timeout=WAIT), f"{self.arrived} of {count} arrived"


@contextmanager
def gate_server() -> Iterator[Gate]:
    holder: dict[str, Gate] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's naming
            gate = holder["g"]
            with gate.cond:
                gate.arrived += 1
                gate.cond.notify_all()
            gate.opened.wait(WAIT)
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_POST = do_GET

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(Handler) as base:
        holder["g"] = Gate(url=base)
        try:
            yield holder["g"]
        finally:
            holder["g"].opened.set()  # release held requests before the server shuts down


SMALL_POOL = 8  # worker threads of the apps these tests start: 8 slow operations would take them all


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Small bounds: 4 outbound operations at once, 2 per organization, in a pool of 8 threads; a
    vendor's answer is awaited longer than the gate holds it, so only the test decides when they end."""
    monkeypatch.setattr(pmap.app, "WORKER_THREADS", SMALL_POOL)
    return settings.model_copy(update={"outbound_concurrency": 4, "outbound_concurrency_per_org": 2,
                                       "connection_test_timeout": 2 * WAIT})


def _unsaved(base: str) -> dict[str, Any]:
    body = integration_body("nessus", base=base)
    return {"vendor": "nessus", "connection": body["connection"], "credentials": body["credentials"]}


class ConcurrentTests:
    """Connection tests sent from threads; their answers as they come back."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.answers: list[httpx.Response] = []
        self.cond = threading.Condition()
        self.threads: list[threading.Thread] = []

    def start(self, headers: dict[str, str], body: dict[str, Any], count: int) -> None:
        def one() -> None:
            with httpx.Client(base_url=self.base_url, timeout=WAIT, trust_env=False) as http:
                r = http.post("/api/v1/integrations/test", json=body, headers=headers)
            with self.cond:
                self.answers.append(r)
                self.cond.notify_all()

        for _ in range(count):
            t = threading.Thread(target=one, daemon=True)
            t.start()
            self.threads.append(t)

    def wait_answered(self, count: int) -> list[int]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.answers) >= count, timeout=WAIT), f"{len(self.answers)} answered"
            return [r.status_code for r in self.answers]

    def join(self) -> None:
        for t in self.threads:
            t.join(WAIT)


def test_slow_outbound_operations_are_bounded_and_reads_keep_answering(served: Served) -> None:  # noqa: F811
    # 10 slow connection tests from 3 organizations against a vendor that holds every request: without
    # the bound they would take all 8 worker threads and stall the rest of the API
    admin, acme = served.token("acme", "admin"), served.token("acme", "operator")
    globex, initech = served.token("globex", "operator"), served.token("initech", "operator")
    r = served.http.post("/api/v1/integrations", json=integration_body("github_issues"), headers=admin)
    hook = r.json()["id"]
    assert served.http.post(f"/api/v1/integrations/{hook}/webhook/generate", headers=admin).status_code == 201
    secret = served.http.post(f"/api/v1/integrations/{hook}/webhook/reveal", headers=admin).json()["secret"]
    with gate_server() as gate:
        tests = ConcurrentTests(served.base_url)
        tests.start(acme, _unsaved(gate.url), 4)
        gate.wait_arrived(2)
        assert sorted(tests.wait_answered(2)) == [429, 429]  # beyond acme's 2, at once, while 2 are held
        refused = tests.answers[0]
        assert int(refused.headers["Retry-After"]) >= 1 and refused.json()["error"]["code"] == "rate_limited"
        tests.start(globex, _unsaved(gate.url), 4)  # another organization still gets its slots
        gate.wait_arrived(4)
        assert sorted(tests.wait_answered(4)) == [429] * 4
        tests.start(initech, _unsaved(gate.url), 2)  # the total bound (4) is reached
        assert sorted(tests.wait_answered(6)) == [429] * 6
        slots: OutboundSlots = served.state.outbound
        assert slots.in_use() == 4 and gate.arrived == 4

        # while 4 slow operations hold their slots: health, reads and a webhook delivery all answer
        assert served.http.get("/healthz").status_code == 200
        assert served.http.get("/api/v1/integrations", headers=acme).status_code == 200
        body = payload("github")
        delivered = served.http.post(f"/hooks/{hook}", content=body, headers=signed("github", body, secret))
        assert delivered.status_code == 202
        assert slots.in_use() == 4 and not gate.opened.is_set()

        gate.opened.set()
        tests.join()
        assert sorted(r.status_code for r in tests.answers) == [200] * 4 + [429] * 6
        assert slots.in_use() == 0  # every slot came back
        r = served.http.post("/api/v1/integrations/test", json=_unsaved(gate.url), headers=acme)
        assert r.status_code == 200


OUTBOUND_ROUTES = [
    ("POST", "/api/v1/integrations/test"),
    ("POST", "/api/v1/integrations/{id}/test"),
    ("POST", "/api/v1/integrations/{id}/permissions-check"),
    ("POST", "/api/v1/integrations/{id}/webhook/register"),
    ("POST", "/api/v1/integrations/{id}/webhook/auto-setup"),
    ("POST", "/api/v1/findings/{id}/tickets"),
]


@pytest.mark.parametrize(("method", "path"), OUTBOUND_ROUTES)
def test_every_outbound_route_is_admitted_before_it_runs(api: Api, method: str, path: str) -> None:
    operator = api.token("acme", "operator")
    with transaction(api.state.sessions) as session:
        org = get_or_create_org(session, "acme").id
    slots: OutboundSlots = api.state.outbound
    slots.acquire(org)
    slots.acquire(org)  # acme's two slots are taken
    try:
        r = api.client.request(method, path.format(id=uuid.uuid4()), json={}, headers=operator)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert r.json()["error"]["code"] == "rate_limited"
        # a viewer is refused for its role, not counted against anything
        r = api.client.request(method, path.format(id=uuid.uuid4()), json={}, headers=api.token("acme", "viewer"))
        assert r.status_code == 403
    finally:
        slots.release(org)
        slots.release(org)
    assert slots.in_use() == 0


def test_the_admitted_routes_are_the_outbound_ones_and_document_their_429(api: Api) -> None:
    doc = api.client.get("/openapi.json").json()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m, op in ops.items()
                  if "429" in op["responses"] and not p.startswith("/hooks/")}
    assert {(m, p.replace("{id}", "{x}")) for m, p in OUTBOUND_ROUTES} == {
        (m, p.replace("{integration_id}", "{x}").replace("{finding_id}", "{x}")) for m, p in documented}


def test_a_slot_is_released_when_the_operation_fails() -> None:
    slots = OutboundSlots(total=2, per_org=1)
    org = uuid.uuid4()
    with pytest.raises(RuntimeError), slots.admitted(org):
        with pytest.raises(RateLimited):
            slots.acquire(org)
        raise RuntimeError("the vendor call failed")
    assert slots.in_use() == slots.in_use(org) == 0
    with slots.admitted(org):
        assert slots.in_use(org) == 1


def test_the_outbound_bound_must_leave_a_reserve_of_threads() -> None:
    with pytest.raises(ValidationError, match="PMAP_OUTBOUND_CONCURRENCY"):
        Settings(outbound_concurrency=WORKER_THREADS - RESERVED_THREADS + 1)
    with pytest.raises(ValidationError, match="PER_ORG"):
        Settings(outbound_concurrency=4, outbound_concurrency_per_org=5)
    assert Settings(outbound_concurrency=WORKER_THREADS - RESERVED_THREADS).outbound_concurrency == 80
