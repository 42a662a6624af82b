"""Webhook secret lifecycle: status, generate, reveal, regenerate; roles, organizations, audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.integrations.models import Integration
from tests.conftest import Api

from .conftest import create_integration


def _base(iid: str) -> str:
    return f"/api/v1/integrations/{iid}/webhook"


def test_generate_reveal_regenerate_and_the_secret_appears_only_in_reveal(api: Api) -> None:
    admin, operator, viewer = api.token(role="admin"), api.token(role="operator"), api.token(role="viewer")
    iid = create_integration(api.client, admin, "github_issues")
    texts: list[str] = []

    status = api.client.get(_base(iid), headers=viewer)
    assert status.status_code == 200
    body = status.json()
    assert body["configured"] is False and body["scheme"] == "github" and body["registered"] is False
    assert body["receiving_url"] == f"{api.state.settings.public_base_url}/hooks/{iid}"
    assert body["registration_supported"] is True and body["ping_supported"] is True

    assert api.client.post(_base(iid) + "/generate", headers=viewer).status_code == 403
    generated = api.client.post(_base(iid) + "/generate", headers=operator)
    assert generated.status_code == 201 and generated.json()["configured"] is True
    texts.append(generated.text)
    again = api.client.post(_base(iid) + "/generate", headers=operator)
    assert again.status_code == 409 and "regenerate" in again.json()["error"]["message"]

    assert api.client.post(_base(iid) + "/reveal", headers=operator).status_code == 403
    revealed = api.client.post(_base(iid) + "/reveal", headers=admin)
    assert revealed.status_code == 200 and set(revealed.json()) == {"secret"}
    assert "no-store" in revealed.headers["cache-control"]
    first = revealed.json()["secret"]
    assert len(first) >= 32

    assert api.client.post(_base(iid) + "/regenerate", headers=operator).status_code == 403
    rotated = api.client.post(_base(iid) + "/regenerate", headers=admin)
    assert rotated.status_code == 200
    texts.append(rotated.text)
    until = datetime.fromisoformat(rotated.json()["previous_secret_valid_until"])
    expected = datetime.now(UTC) + timedelta(seconds=api.state.settings.webhook_grace_seconds)
    assert abs((until - expected).total_seconds()) < 60  # the default grace: PMAP_WEBHOOK_GRACE_SECONDS
    assert any("previous secret" in w for w in rotated.json()["warnings"])
    second = api.client.post(_base(iid) + "/reveal", headers=admin).json()["secret"]
    assert second != first
    bad = api.client.post(_base(iid) + "/regenerate", json={"grace_seconds": -1}, headers=admin)
    assert bad.status_code == 422

    texts += [api.client.get(_base(iid), headers=viewer).text,
              api.client.get(f"/api/v1/integrations/{iid}", headers=viewer).text,
              api.client.get("/api/v1/integrations", headers=viewer).text,
              api.client.get(_base(iid) + "/deliveries", headers=viewer).text,
              api.client.get("/api/v1/audit-events", headers=admin).text]
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=viewer).json()["webhook_secret_configured"] is True
    for text in texts:
        assert first not in text and second not in text


def test_lifecycle_is_audited_without_values(api: Api) -> None:
    h = api.token()
    iid = create_integration(api.client, h, "jira_cloud")
    api.client.post(_base(iid) + "/generate", headers=h)
    secret = api.client.post(_base(iid) + "/reveal", headers=h).json()["secret"]
    api.client.post(_base(iid) + "/regenerate", json={"grace_seconds": 0}, headers=h)
    with api.state.sessions() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid))).all()
    seen = {(e.action, e.purpose) for e in events}
    assert ("webhook.secret.generate", None) in seen and ("webhook.secret.regenerate", None) in seen
    assert ("credentials.decrypt", "reveal") in seen
    assert ("credentials.decrypt", "webhook_rotation") in seen  # the rotation read the old secret
    assert all(secret not in str(e.detail) for e in events)
    rotation = next(e for e in events if e.action == "webhook.secret.regenerate")
    assert rotation.detail == {"scheme": "jira", "grace_seconds": 0}


def test_grace_zero_keeps_no_previous_secret(api: Api) -> None:
    h = api.token()
    iid = create_integration(api.client, h, "servicenow")
    api.client.post(_base(iid) + "/generate", headers=h)
    r = api.client.post(_base(iid) + "/regenerate", json={"grace_seconds": 0}, headers=h)
    assert r.status_code == 200 and r.json()["previous_secret_valid_until"] is None
    from pmap.core.seams import Actor, Purpose

    with api.state.sessions() as s:
        row = s.get_one(Integration, uuid.UUID(iid))
        actor = Actor("system", "test", row.organization_id)
        with api.state.resolver.resolve_webhook_secrets(row, purpose=Purpose.REVEAL, actor=actor) as secrets:
            assert secrets.current and secrets.previous is None


def test_secret_formats_follow_the_vendor(api: Api) -> None:
    h = api.token()
    for vendor, check in (("jenkins", lambda s: s.startswith("whsec_")), ("sonarqube", lambda s: len(s) >= 16),
                          ("gitlab_issues", lambda s: 32 <= len(s) <= 255)):
        iid = create_integration(api.client, h, vendor)
        assert api.client.post(_base(iid) + "/generate", headers=h).status_code == 201
        assert check(api.client.post(_base(iid) + "/reveal", headers=h).json()["secret"]), vendor


def test_other_organizations_and_vendors_without_webhooks(api: Api) -> None:
    h, other = api.token("acme"), api.token("globex")
    iid = create_integration(api.client, h, "snyk")
    for method, suffix in (("get", ""), ("post", "/generate"), ("post", "/reveal"), ("post", "/regenerate"),
                           ("post", "/register"), ("post", "/auto-setup"), ("get", "/deliveries"),
                           ("get", "/ticket-events")):
        r = getattr(api.client, method)(_base(iid) + suffix, headers=other)
        assert r.status_code == 404, (suffix, r.text)
    assert api.client.post(f"/api/v1/integrations/{iid}/permissions-check", headers=other).status_code == 404
    assert api.client.get(_base(str(uuid.uuid4())), headers=h).status_code == 404

    tenable = create_integration(api.client, h, "tenable_vm")
    for method, suffix in (("get", ""), ("post", "/generate"), ("post", "/register")):
        r = getattr(api.client, method)(_base(tenable) + suffix, headers=h)
        assert r.status_code == 422 and "sends no webhooks" in r.json()["error"]["message"]
        assert r.json()["error"]["code"] == "operation_not_supported"


def test_reveal_before_generate_and_register_without_secret_are_conflicts(api: Api) -> None:
    h = api.token()
    iid = create_integration(api.client, h, "github_issues")
    assert api.client.post(_base(iid) + "/reveal", headers=h).status_code == 409
    r = api.client.post(_base(iid) + "/register", headers=h)
    assert r.status_code == 409 and "generate" in r.json()["error"]["message"]
    # ServiceNow has no API to install webhooks: registration is refused with what to do instead
    sn = create_integration(api.client, h, "servicenow")
    api.client.post(_base(sn) + "/generate", headers=h)
    r = api.client.post(_base(sn) + "/register", headers=h)
    assert r.status_code == 422 and "by hand" in r.json()["error"]["message"]  # no state change would help
    assert r.json()["error"]["code"] == "operation_not_supported"
    assert api.client.get(_base(sn), headers=h).json()["registration_supported"] is False


def test_a_secret_sent_with_each_delivery_over_plain_http_is_warned(make_api) -> None:
    plain, tls = make_api(public_base_url="http://pmap.example"), make_api(public_base_url="https://pmap.example")
    h = plain.token()
    for vendor, exposed in (("gitlab_issues", True), ("azure_boards", True), ("github_issues", False)):
        iid = create_integration(plain.client, h, vendor)
        assert plain.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
        warned = [w for w in plain.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()["warnings"]
                  if "plain http" in w]
        assert bool(warned) is exposed, vendor  # an HMAC signature over http does not reveal the secret
        assert not [w for w in tls.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()["warnings"]
                    if "plain http" in w]
    loopback = make_api(public_base_url="http://127.0.0.1:8000")  # the development default: no network to cross
    iid = create_integration(loopback.client, h, "gitlab_issues")
    assert loopback.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    assert not [w for w in loopback.client.get(f"/api/v1/integrations/{iid}/webhook", headers=h).json()["warnings"]
                if "plain http" in w]
