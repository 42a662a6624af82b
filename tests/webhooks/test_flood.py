"""Junk posts to a receiving URL cannot starve correctly signed deliveries, nor turn into a database
or audit-write flood: failures are charged to their own budget, per source and per integration."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import ColumnElement, func, select

from pmap.audit.models import AuditEvent
from pmap.webhooks import receiver, unrecorded
from pmap.webhooks.models import WebhookDelivery
from tests.conftest import Api

from .conftest import create_integration, generic, payload, signed

JUNK = 2_000
FAILED_BUDGET = 20  # failed verifications recorded one by one per minute, per source and per integration


@pytest.fixture(autouse=True)
def _flush_when_told(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Summaries are written when a test says so, not by the timer half way through a test."""
    monkeypatch.setattr(unrecorded, "FLUSH_SECONDS", 3600.0)
    yield


def _github(api: Api) -> tuple[dict[str, str], str, str]:
    h = api.token()
    iid = create_integration(api.client, h, "github_issues")
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    return h, iid, api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]


def _count(api: Api, iid: str, *where: ColumnElement[bool]) -> int:
    with api.state.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.integration_id == uuid.UUID(iid), *where)) or 0)


def _decrypt_audits(api: Api, iid: str) -> list[AuditEvent]:
    with api.state.sessions() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                       AuditEvent.purpose == "webhook_verification")))


def test_a_junk_flood_does_not_starve_signed_deliveries_nor_cost_a_row_each(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_failed_rate_per_minute=FAILED_BUDGET)  # verified deliveries keep the default 600
    h, iid, secret = _github(api)
    body = payload("github")
    forged = signed("github", body, "not-the-secret")
    answers = set()
    for i in range(JUNK):  # bad signatures, unsigned posts, unknown and malformed ids, from one source
        target, headers = [(iid, forged), (iid, {"Content-Type": "application/json"}),
                           (str(uuid.uuid4()), forged), ("junk", forged)][i % 4]
        r = api.client.post(f"/hooks/{target}", content=body, headers=headers)
        answers.add((r.status_code, str(generic(r.json()))))
    assert len(answers) == 1 and next(iter(answers))[0] == 401  # every junk post got the one rejection

    for i in range(5):  # the same source, over its failed budget: correctly signed ones are all accepted
        good = payload("github", i)
        r = api.client.post(f"/hooks/{iid}", content=good, headers=signed("github", good, secret, event="push"))
        assert r.status_code == 202, r.text
    assert _count(api, iid, WebhookDelivery.verification == "signed") == 5

    recorded = _count(api, iid, WebhookDelivery.outcome == "rejected")
    assert 0 < recorded <= FAILED_BUDGET  # the junk beyond the budget cost no row each
    assert len(_decrypt_audits(api, iid)) <= FAILED_BUDGET + 5  # nor an audit event each

    rt = receiver.runtime(api.app.state)
    rt.flush_unrecorded()  # what the timer does: one summary row and one audit event for the rest
    against_integration = JUNK // 2
    with api.state.sessions() as s:
        rows = s.scalars(select(WebhookDelivery).where(WebhookDelivery.integration_id == uuid.UUID(iid),
                                                       WebhookDelivery.outcome == "rejected")).all()
    assert len(rows) == recorded + 1 and sum(r.attempts for r in rows) == against_integration
    assert all(r.body is None for r in rows)
    status = api.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()
    assert status["rejected_count"] == against_integration
    audits = _decrypt_audits(api, iid)
    assert sum(int(e.detail.get("count", 1)) for e in audits) == against_integration + 5  # every decrypt audited
    assert len(audits) <= FAILED_BUDGET + 5 + 1
    assert secret not in str([(e.detail, e.action) for e in audits])


def test_the_failed_budget_of_an_integration_holds_across_sources(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_failed_rate_per_minute=5)
    _h, iid, secret = _github(api)
    body = payload("github")
    answers = []
    for n in range(3):  # three sources, each within its own budget (4 of 5)
        other = TestClient(api.client.app, raise_server_exceptions=False, client=(f"192.0.2.{n + 1}", 40000))
        for _ in range(4):
            r = other.post(f"/hooks/{iid}", content=body, headers=signed("github", body, "wrong"))
            answers.append((r.status_code, str(generic(r.json()))))
        good = payload("github", n)
        r = other.post(f"/hooks/{iid}", content=good, headers=signed("github", good, secret))
        assert r.status_code == 202
    assert len(set(answers)) == 1 and answers[0][0] == 401
    assert _count(api, iid, WebhookDelivery.outcome == "rejected") == 5  # the integration's budget
    receiver.runtime(api.app.state).flush_unrecorded()
    with api.state.sessions() as s:
        attempts = s.scalar(select(func.sum(WebhookDelivery.attempts)).where(
            WebhookDelivery.integration_id == uuid.UUID(iid), WebhookDelivery.outcome == "rejected"))
    assert attempts == 12


def test_an_unknown_id_and_a_bad_signature_still_look_alike_over_the_budget(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_failed_rate_per_minute=2)
    _h, iid, _secret = _github(api)
    body = payload("github")
    forged = signed("github", body, "wrong")
    for _ in range(5):
        api.client.post(f"/hooks/{iid}", content=body, headers=forged)
    bad = api.client.post(f"/hooks/{iid}", content=body, headers=forged)
    unknown = api.client.post(f"/hooks/{uuid.uuid4()}", content=body, headers=forged)
    malformed = api.client.post("/hooks/not-an-id", content=body, headers=forged)
    assert bad.status_code == unknown.status_code == malformed.status_code == 401
    assert generic(bad.json()) == generic(unknown.json()) == generic(malformed.json())
    assert set(bad.headers) == set(unknown.headers)  # no Retry-After or anything else that tells them apart


def test_a_verified_flood_is_limited_and_its_decrypts_audited_together(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_rate_per_minute=3)
    _h, iid, secret = _github(api)
    codes = []
    for i in range(10):  # a leaked secret: correctly signed deliveries beyond the verified budget
        good = payload("github", i)
        codes.append(api.client.post(f"/hooks/{iid}", content=good, headers=signed("github", good, secret)).status_code)
    assert codes == [202] * 3 + [429] * 7
    assert len(_decrypt_audits(api, iid)) == 3
    receiver.runtime(api.app.state).flush_unrecorded()
    audits = _decrypt_audits(api, iid)
    assert len(audits) == 4 and sum(int(e.detail.get("count", 1)) for e in audits) == 10
    assert _count(api, iid) == 3  # a rate-limited delivery is not stored (the vendor sends it again)


def test_the_timer_writes_what_was_counted_without_a_further_post(make_api: Callable[..., Api],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unrecorded, "FLUSH_SECONDS", 0.05)
    api = make_api(webhook_failed_rate_per_minute=1)
    _h, iid, _secret = _github(api)
    body = payload("github")
    for _ in range(4):
        r = api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, "wrong"))
        assert r.status_code == 401
    deadline = time.monotonic() + 30  # a bound against hanging, not a timing assertion
    while _attempts(api, iid) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _attempts(api, iid) == 4  # one recorded, three counted and written by the timer


def _attempts(api: Api, iid: str) -> int:
    with api.state.sessions() as s:
        return int(s.scalar(select(func.coalesce(func.sum(WebhookDelivery.attempts), 0)).where(
            WebhookDelivery.integration_id == uuid.UUID(iid))) or 0)
