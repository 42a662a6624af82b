"""The receiver at POST /hooks/{id}, for every scheme a vendor type uses, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from pmap.audit.models import AuditEvent
from pmap.credentials.service import WebhookSecrets, seal_webhook_secrets
from pmap.integrations.models import Integration
from pmap.webhooks import clock, receiver
from pmap.webhooks.models import WebhookDelivery
from pmap.webhooks.schemes import SCHEMES
from pmap.webhooks.store import AuditBuffer
from tests.conftest import Api

from .conftest import (
    TIMESTAMPED,
    create_integration,
    deliveries,
    generic,
    payload,
    settle,
    signed,
    unique,
    vendor_for,
)

ALL_SCHEMES = sorted(SCHEMES)
#: schemes whose proof is a static token or password, not a signature of the body: a changed body
#: cannot be told from the original (GitLab token mode, Azure DevOps Basic auth)
TOKEN_SCHEMES = {"gitlab_token", "azure_devops_basic"}


def _setup(api: Api, scheme: str) -> tuple[dict[str, str], str, str]:
    vendor = vendor_for(scheme)
    if vendor is None:
        pytest.skip(f"no vendor type of this build uses the {scheme} scheme")
    h = api.token()
    iid = create_integration(api.client, h, vendor)
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    secret = api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]
    return h, iid, secret


def _rows(api: Api, iid: str) -> list[WebhookDelivery]:
    with api.state.sessions() as s:
        return list(s.scalars(select(WebhookDelivery).where(WebhookDelivery.integration_id == uuid.UUID(iid))))


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_every_scheme_accepts_valid_and_rejects_forged_deliveries(api: Api, scheme: str) -> None:
    h, iid, secret = _setup(api, scheme)
    url = f"/hooks/{iid}"
    body, did = payload(scheme), unique("delivery")
    proof = signed(scheme, body, secret, delivery_id=did)
    r = api.client.post(url, content=body, headers=proof)
    assert r.status_code == 202 and r.json() == {"status": "accepted"}
    # the same delivery again is acknowledged, not processed again
    again = api.client.post(url, content=body, headers=proof)
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}

    unknown = generic(api.client.post(f"/hooks/{uuid.uuid4()}", content=body, headers=proof).json())
    other = SCHEMES[scheme].generate_secret()
    if scheme in TOKEN_SCHEMES:  # same proof and delivery id: at most a duplicate, never processed twice
        tampered = api.client.post(url, content=body + b" ", headers=proof)
        assert tampered.status_code == 200 and tampered.json() == {"status": "duplicate"}
    forged = [] if scheme in TOKEN_SCHEMES else [(body + b" ", proof)]  # tampered body
    forged += [
        (payload(scheme, 2), signed(scheme, payload(scheme, 2), other)),  # wrong secret
        (payload(scheme, 3), {"Content-Type": "application/json"}),  # no proof at all
    ]
    if scheme in TIMESTAMPED:  # signed correctly, six minutes ago
        old = int(clock.now().timestamp()) - 360
        forged.append((payload(scheme, 4), signed(scheme, payload(scheme, 4), secret, timestamp=old)))
    for forged_body, headers in forged:
        r = api.client.post(url, content=forged_body, headers=headers)
        assert r.status_code == 401, (scheme, r.text)
        assert generic(r.json()) == unknown  # indistinguishable from an unknown integration

    settle(api)
    items = deliveries(api.client, h, iid)
    done = [i for i in items if i["outcome"] in ("accepted", "processed")]
    assert len(done) == 1 and done[0]["verification"] == "signed" and done[0]["secret"] == "current"
    if scheme not in ("azure_devops_basic", "sonarqube"):  # those ids come from the body
        assert done[0]["delivery_id"] == did
    assert [i["outcome"] for i in items].count("duplicate") == (2 if scheme in TOKEN_SCHEMES else 1)
    rejected = [i for i in items if i["outcome"] == "rejected"]
    assert len(rejected) == len(forged) and all(i["reason"] for i in rejected)
    stored = {row.outcome: row for row in _rows(api, iid)}
    assert stored["processed"].body == body
    assert all(row.body is None for row in _rows(api, iid) if row.outcome != "processed")  # rejected: no body
    status = api.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()
    assert status["rejected_count"] == len(forged) and status["last_rejection_reason"]
    assert status["last_verified_delivery_at"] is not None


@pytest.mark.parametrize("scheme", sorted(set(ALL_SCHEMES) - TOKEN_SCHEMES))
def test_a_captured_delivery_sent_again_under_a_fresh_id_is_not_processed_twice(api: Api, scheme: str) -> None:
    """The id header is the sender's to choose unless the signature covers it: a replay that swaps it
    for a fresh one is a duplicate (or, where the id is signed, a bad signature), never a new event."""
    h, iid, secret = _setup(api, scheme)
    body, did = payload(scheme), unique("delivery")
    proof = signed(scheme, body, secret, delivery_id=did)
    assert api.client.post(f"/hooks/{iid}", content=body, headers=proof).status_code == 202
    replay = {name: (unique("fresh") if value == did else value) for name, value in proof.items()}
    r = api.client.post(f"/hooks/{iid}", content=body, headers=replay)
    assert r.status_code in (200, 401) and r.json().get("status") != "accepted", (scheme, r.text)
    settle(api)
    outcomes = [i["outcome"] for i in deliveries(api.client, h, iid)]
    assert outcomes.count("processed") + outcomes.count("accepted") == 1, outcomes


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_an_empty_configured_secret_rejects_everything(api: Api, scheme: str) -> None:
    h, iid, _ = _setup(api, scheme)
    with api.state.sessions() as s:
        row = s.get_one(Integration, uuid.UUID(iid))
        row.encrypted_webhook_secret = seal_webhook_secrets(api.state.keys, row.id, WebhookSecrets("", None, None))
        s.commit()
    body = payload(scheme)
    attempts = [{"Content-Type": "application/json"}]  # unsigned: a configured (empty) secret is not "none"
    with contextlib.suppress(ValueError):  # some schemes cannot even sign with an empty key
        attempts.append(signed(scheme, body, ""))
    for headers in attempts:
        assert api.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code == 401
    assert all(i["outcome"] == "rejected" for i in deliveries(api.client, h, iid))


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_previous_secret_is_accepted_only_during_the_grace_period(api: Api, scheme: str,
                                                                  travel: Callable[[float], None]) -> None:
    h, iid, first = _setup(api, scheme)
    base = f"/api/v1/integrations/{iid}/webhook"
    r = api.client.post(base + "/regenerate", json={"grace_seconds": 3600}, headers=h)
    assert r.status_code == 200 and r.json()["previous_secret_valid_until"] is not None
    second = api.client.post(base + "/reveal", headers=h).json()["secret"]
    assert second != first

    def send(secret: str) -> int:
        body = payload(scheme)
        return api.client.post(f"/hooks/{iid}", content=body, headers=signed(scheme, body, secret)).status_code

    assert send(first) == 202 and send(second) == 202
    slots = sorted(i["secret"] for i in deliveries(api.client, h, iid) if i["verification"] == "signed")
    assert slots == ["current", "previous"]
    travel(3601)  # the grace period is over
    assert send(first) == 401 and send(second) == 202
    assert api.client.get(base, headers=h).json()["previous_secret_valid_until"] is None
    # a rotation with grace_seconds=0 ends the previous secret at once
    assert api.client.post(base + "/regenerate", json={"grace_seconds": 0}, headers=h).status_code == 200
    third = api.client.post(base + "/reveal", headers=h).json()["secret"]
    assert send(second) == 401 and send(third) == 202


def test_unknown_and_malformed_ids_answer_like_a_bad_signature(api: Api) -> None:
    _h, iid, secret = _setup(api, "github")
    body = payload("github")
    bad = api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, "not-the-secret"))
    for path in (f"/hooks/{uuid.uuid4()}", "/hooks/not-a-uuid", "/hooks/%27%3B--"):
        r = api.client.post(path, content=body, headers=signed("github", body, secret))
        assert r.status_code == bad.status_code == 401
        assert generic(r.json()) == generic(bad.json()) and set(r.json()) == {"error"}
    with api.state.sessions() as session:  # closed: an open transaction would block the schema's DROP at the end
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 1  # the bad one


def test_a_delivery_is_acknowledged_only_once_it_is_committed(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _h, iid, secret = _setup(api, "github")
    store = receiver.runtime(api.app.state).store

    def failing_commit(batch: object) -> list[str]:
        raise OperationalError("INSERT INTO webhook_deliveries", {}, Exception("disk full"))

    monkeypatch.setattr(store, "store_batch", failing_commit)
    body = payload("github")
    r = api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))
    assert r.status_code >= 500  # never a 2xx: the vendor must deliver it again
    assert _rows(api, iid) == []


def test_development_accepts_unsigned_with_a_warning_production_only_when_allowed(
        api: Api, make_api: Callable[..., Api], caplog: pytest.LogCaptureFixture) -> None:
    h = api.token()
    iid = create_integration(api.client, h, "github_issues")
    body = payload("github")
    headers = {"Content-Type": "application/json", "X-GitHub-Delivery": unique("d"), "X-GitHub-Event": "push"}
    with caplog.at_level("WARNING", logger="pmap.webhooks.receiver"):
        assert api.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code == 202
    assert any(r.levelname == "WARNING" and "unsigned" in r.getMessage() for r in caplog.records)
    status = api.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()
    assert not status["configured"] and any("unsigned" in w for w in status["warnings"])
    [item] = deliveries(api.client, h, iid)
    assert item["verification"] == "unsigned" and "unsigned" in item["reason"]

    prod = make_api(env="production")
    headers["X-GitHub-Delivery"] = unique("d")
    assert prod.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code == 401
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"allow_unsigned_webhooks": True}, headers=h)
    assert r.status_code == 200
    headers["X-GitHub-Delivery"] = unique("d")
    assert prod.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code == 202
    ph = prod.token()  # same organization "acme"
    warnings = prod.client.get(f"/api/v1/integrations/{iid}/webhook", headers=ph).json()["warnings"]
    assert any("unsigned webhook deliveries are accepted" in w for w in warnings)
    # once a secret exists, unsigned deliveries are refused whatever the flag says
    assert prod.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=ph).status_code == 201
    headers["X-GitHub-Delivery"] = unique("d")
    assert prod.client.post(f"/hooks/{iid}", content=body, headers=headers).status_code == 401
    assert [i["outcome"] for i in deliveries(api.client, h, iid)].count("rejected") == 2


def test_rate_limit_per_integration(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_rate_per_minute=3)
    _h, iid, secret = _setup(api, "github")
    _h2, other, other_secret = _setup(api, "github")

    def send(target: str, key: str) -> httpx.Response:
        body = payload("github")
        return api.client.post(f"/hooks/{target}", content=body, headers=signed("github", body, key))

    assert [send(iid, secret).status_code for _ in range(3)] == [202, 202, 202]
    limited = send(iid, secret)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert send(other, other_secret).status_code == 202  # another integration has its own bucket


def test_oversized_body_is_refused_and_not_stored(make_api: Callable[..., Api]) -> None:
    api = make_api(webhook_max_body_bytes=2048)
    _h, iid, secret = _setup(api, "github")
    body = b'{"pad":"' + b"x" * 4096 + b'"}'
    r = api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))
    assert r.status_code == 413
    # without a Content-Length (chunked) the cap holds on the bytes actually received
    chunks = iter([body[:2048], body[2048:]])
    r = api.client.post(f"/hooks/{iid}", content=chunks, headers=signed("github", body, secret))
    assert r.status_code == 413
    assert _rows(api, iid) == []


def test_disabled_integration_rejects_deliveries(api: Api) -> None:
    h, iid, secret = _setup(api, "jira")
    assert api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": False}, headers=h).status_code == 200
    body = payload("jira")
    assert api.client.post(f"/hooks/{iid}", content=body, headers=signed("jira", body, secret)).status_code == 401
    [item] = deliveries(api.client, h, iid)
    assert item["outcome"] == "rejected" and item["reason"] == "integration disabled"


def test_each_verification_decrypt_is_audited_with_its_delivery(api: Api) -> None:
    _h, iid, secret = _setup(api, "snyk")
    for i in range(3):
        body = payload("snyk", i)
        assert api.client.post(f"/hooks/{iid}", content=body, headers=signed("snyk", body, secret)).status_code == 202
    body = payload("snyk", 9)
    assert api.client.post(f"/hooks/{iid}", content=body, headers=signed("snyk", body, "wrong")).status_code == 401
    with api.state.sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                    AuditEvent.purpose == "webhook_verification")).all()
    assert len(events) == 4 and {e.actor for e in events} == {"webhook:snyk"}
    assert all(e.action == "credentials.decrypt" and e.outcome == "success" for e in events)


def test_a_delivery_and_its_verification_audit_commit_together(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _h, iid, secret = _setup(api, "snyk")
    record = AuditBuffer.record

    def unwritable(self: AuditBuffer, **event: object) -> None:
        record(self, **event)  # type: ignore[arg-type]
        self.rows[-1]["action"] = None  # NOT NULL: the audit insert fails

    monkeypatch.setattr(AuditBuffer, "record", unwritable)
    body = payload("snyk")
    assert api.client.post(f"/hooks/{iid}", content=body, headers=signed("snyk", body, secret)).status_code >= 500
    assert _rows(api, iid) == []  # no delivery stored without its audit event


def test_deliveries_list_pages_with_a_cursor_and_filters_by_outcome(api: Api) -> None:
    h, iid, secret = _setup(api, "github")
    for i in range(5):
        body = payload("github", i)
        api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret, event="push"))
    api.client.post(f"/hooks/{iid}", content=b"{}", headers=signed("github", b"{}", "wrong"))
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get(f"/api/v1/integrations/{iid}/webhook/deliveries", params=params, headers=h).json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6
    assert len(deliveries(api.client, h, iid, outcome="rejected")) == 1
    assert all(i["event"] == "push" for i in deliveries(api.client, h, iid, outcome="processed"))
    other = api.token("globex")
    assert api.client.get(f"/api/v1/integrations/{iid}/webhook/deliveries", headers=other).status_code == 404


def test_a_secret_that_cannot_be_decrypted_answers_503_and_is_audited(api: Api) -> None:
    h, iid, secret = _setup(api, "github")
    with api.state.sessions() as s:
        row = s.get_one(Integration, uuid.UUID(iid))
        assert row.encrypted_webhook_secret is not None
        envelope = dict(row.encrypted_webhook_secret)
        envelope["ct"] = envelope["ct"][:-4] + ("AAAA" if not envelope["ct"].endswith("AAAA") else "BBBB")
        row.encrypted_webhook_secret = envelope
        s.commit()
    body = payload("github")
    r = api.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))
    assert r.status_code == 503 and secret not in r.text
    [item] = deliveries(api.client, h, iid)
    assert item["outcome"] == "rejected" and item["reason"] == "webhook secret could not be decrypted"
    with api.state.sessions() as s:
        failures = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                      AuditEvent.outcome == "failure")).all()
    assert [e.purpose for e in failures] == ["webhook_verification"]


def test_the_receivers_audit_events_join_the_audit_chain(api: Api) -> None:
    import time

    from pmap.audit.chain import verify_chain

    scheme = next(s for s in SCHEMES if vendor_for(s) is not None)
    _h, iid, secret = _setup(api, scheme)
    for n in range(3):  # stored (the batch writer's path: on PostgreSQL one CTE statement)
        body = payload(scheme, n)
        r = api.client.post(f"/hooks/{iid}", content=body, headers=signed(scheme, body, secret,
                                                                          delivery_id=unique("d")))
        assert r.status_code == 202, r.text
    body = payload(scheme, 9)  # rejected (its own write)
    assert api.client.post(f"/hooks/{iid}", content=body,
                           headers=signed(scheme, body, SCHEMES[scheme].generate_secret())).status_code >= 400
    deadline = time.monotonic() + 10  # the writer seals once the requests are answered
    while True:
        with api.state.sessions() as s:
            seqs = list(s.scalars(select(AuditEvent.seq).where(AuditEvent.integration_id == uuid.UUID(iid))))
            if None not in seqs or time.monotonic() > deadline:
                break
        time.sleep(0.05)
    assert len(seqs) >= 4 and None not in seqs
    with api.state.sessions() as s:
        assert verify_chain(s, api.state.keys).ok
