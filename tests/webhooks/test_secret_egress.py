"""Where a webhook secret may be sent: only the role that may reveal it (admin) sends it somewhere new.

An operator who moves an integration's target (base URL, TLS trust, or the vendor-side container such
as the repository) cannot have PMAP register the current secret, nor a rotated one, at the new target:
register and auto-setup answer 403 until an admin has registered there. End to end, the operator's new
target is a recording man in the middle in front of the vendor sandbox, hunted for the secret in raw and
encoded forms."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.auth.principal import Principal, Role
from pmap.integrations.models import Integration
from pmap.webhooks.approval import may_send_secret, target_fingerprint
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api
from tests.loopback_receiver import Received, serve_receiver

from .conftest import Served, create_integration, integration_body

#: every vendor whose hook PMAP installs through the vendor's API in the sandbox
REGISTRABLE = ["github_issues", "gitlab_issues", "snyk", "azure_boards", "jira_cloud", "sonarqube"]
#: these need an account allowed to manage hooks (the sandbox's "admin" marker)
NEEDS_ADMIN_RIGHTS = {"jira_cloud", "sonarqube"}


def _base(iid: str) -> str:
    return f"/api/v1/integrations/{iid}/webhook"


def secret_forms(secret: str) -> set[bytes]:
    """The forms a secret may travel in: raw, URL-, JSON-escaped, base64 (alone or as Basic auth)."""
    texts = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1]}
    for plain in (secret, f"pmap:{secret}", f":{secret}"):
        texts |= {base64.b64encode(plain.encode()).decode(), base64.urlsafe_b64encode(plain.encode()).decode()}
    return {t.encode() for t in texts}


def carries(request: Received, secret: str) -> bool:
    """Whether a recorded request holds ``secret`` anywhere: path, header names and values, body."""
    raw = request.path.encode() + json.dumps(request.headers).encode() + b"\n".join(
        v.encode("latin-1", "replace") for v in request.headers.values()) + request.body
    return any(form in raw for form in secret_forms(secret))


def _moved(vendor: str, origin: str, marker: str) -> dict[str, Any]:
    """A PATCH pointing the integration at ``origin`` with throwaway secrets, as a target change needs."""
    body = integration_body(vendor, base=origin, marker=marker)
    return {"connection": {"base_url": body["connection"]["base_url"]}, "credentials": body["credentials"]}


@pytest.mark.parametrize("vendor", REGISTRABLE)
def test_an_operator_cannot_send_the_webhook_secret_to_a_target_they_moved(
        served: Served, sandbox: SandboxServer, vendor: str) -> None:
    op, admin = served.token(role="operator"), served.token()
    marker = "admin" if vendor in NEEDS_ADMIN_RIGHTS else "ok"
    iid = create_integration(served.http, op, vendor, base=sandbox.base_url, marker=marker)
    # a secret generated on this target has been sent nowhere: its operator may register it here
    assert served.http.post(_base(iid) + "/generate", headers=op).status_code == 201
    registered = served.http.post(_base(iid) + "/register", headers=op)
    assert registered.status_code == 200, registered.text
    first = served.http.post(_base(iid) + "/reveal", headers=admin).json()["secret"]

    with serve_receiver(upstream=sandbox.base_url) as mitm:  # the operator's server, relaying to the vendor
        origin = mitm.url.split("/hooks/")[0]
        r = served.http.patch(f"/api/v1/integrations/{iid}", json=_moved(vendor, origin, marker), headers=op)
        assert r.status_code == 200, r.text
        for action in ("register", "auto-setup"):
            refused = served.http.post(_base(iid) + "/" + action, headers=op)
            assert refused.status_code == 403, (action, refused.text)
            assert "admin" in refused.json()["error"]["message"]
        # a rotated secret sent by the operator's call would be just as useful to them
        assert served.http.post(_base(iid) + "/regenerate", headers=op).status_code == 403
        assert served.http.post(_base(iid) + "/regenerate", json={"grace_seconds": 0}, headers=admin).status_code == 200
        second = served.http.post(_base(iid) + "/reveal", headers=admin).json()["secret"]
        assert served.http.post(_base(iid) + "/register", headers=op).status_code == 403
        assert served.http.post(_base(iid) + "/auto-setup", headers=op).status_code == 403
        status = served.http.get(_base(iid), headers=op).json()
        assert status["target_approved"] is False and any("admin" in w for w in status["warnings"])
        # what an operator may still do there reaches the listener (so it does record), with their own secrets
        assert served.http.post(f"/api/v1/integrations/{iid}/test", headers=op).status_code == 200
        seen = list(mitm.deliveries)
        assert seen, "the recording listener saw nothing: the hunt below would prove nothing"
        for request in seen:
            for secret in (first, second):
                assert not carries(request, secret), \
                    f"a webhook secret reached the operator's server: {request.method} {request.path}"

        # an admin registering the new target approves it: the secret goes there (the hunt finds it)
        assert served.http.post(_base(iid) + "/register", headers=admin).status_code == 200
        assert any(carries(request, second) for request in mitm.deliveries[len(seen):])
        assert served.http.get(_base(iid), headers=op).json()["target_approved"] is True
        assert served.http.post(_base(iid) + "/register", headers=op).status_code == 200

    events = served.http.get("/api/v1/audit-events", params={"limit": 200}, headers=admin).json()["items"]
    refusals = [e for e in events if e["action"] == "webhook.register" and e["outcome"] == "failure"
                and e["integration_id"] == iid]
    assert len(refusals) == 4 and all(e["detail"]["reason"] == "target_not_approved" for e in refusals)
    registrations = [e["detail"]["approves_target"] for e in events if e["action"] == "webhook.register"
                     and e["outcome"] == "success" and e["integration_id"] == iid]
    assert registrations == [False, True, False]  # newest first: the operator's, the admin's, the first
    assert all(first not in json.dumps(e) and second not in json.dumps(e) for e in events)


def test_another_repository_or_tls_trust_is_another_target_for_the_secret(api: Api) -> None:
    op, admin = api.token(role="operator"), api.token()
    iid = create_integration(api.client, op, "github_issues")
    assert api.client.get(_base(iid), headers=op).json()["target_approved"] is True  # generating approves it
    assert api.client.post(_base(iid) + "/generate", headers=op).status_code == 201
    # the repository names where the hook lives: the operator's own repository is somewhere new
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"repository": "mallory/loot"}}, headers=op)
    assert r.status_code == 200
    refused = api.client.post(_base(iid) + "/register", headers=op)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    assert api.client.get(_base(iid), headers=op).json()["target_approved"] is False
    assert api.client.post(_base(iid) + "/auto-setup", headers=op).status_code == 403
    # back where it was approved, the operator may register again (the vendor is unreachable here: 502)
    api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"repository": "acme/webapp"}}, headers=op)
    assert api.client.post(_base(iid) + "/register", headers=op).status_code == 502
    # an admin's call is not refused: it approves the target it registers on
    api.client.patch(f"/api/v1/integrations/{iid}", json={"connection": {"repository": "mallory/loot"}}, headers=op)
    assert api.client.post(_base(iid) + "/register", headers=admin).status_code == 502


def _row(connection: dict[str, Any], approved: dict[str, Any] | None) -> Integration:
    state: dict[str, object] = {"configured": True}
    if approved is not None:
        state["approved_target"] = target_fingerprint(approved)
    return Integration(id=uuid.uuid4(), organization_id=uuid.uuid4(), name="n", vendor="github_issues",
                       category="tracker", connection=connection, webhook_state=state)


def test_scheduled_sends_and_operators_reach_only_the_approved_target() -> None:
    home = {"base_url": "https://api.github.com", "repository": "acme/webapp", "verify_tls": True}
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    org = uuid.uuid4()
    operator = Principal(token_id=uuid.uuid4(), name="op", organization_id=org, role=Role.OPERATOR)
    admin = Principal(token_id=uuid.uuid4(), name="boss", organization_id=org, role=Role.ADMIN)
    assert may_send_secret(_row(home, home), None) and may_send_secret(_row(home, home), operator)
    # timing settings are not a place; "" pins no CA, like no bundle at all
    assert may_send_secret(_row({**home, "timeout_seconds": 30, "ca_bundle": ""}, home), None)
    elsewhere = [{**home, "base_url": "https://ghe.mallory.test/api/v3"}, {**home, "base_url": "http://api.github.com"},
                 {**home, "base_url": "https://api.github.com:8443"}, {**home, "base_url": "https://api.github.com/x"},
                 {**home, "repository": "mallory/loot"}, {**home, "verify_tls": False}, {**home, "ca_bundle": pem}]
    for moved in elsewhere:
        # the scheduled rotation (no principal) and an operator send only where an admin approved
        assert not may_send_secret(_row(moved, home), None), moved
        assert not may_send_secret(_row(moved, home), operator), moved
        assert may_send_secret(_row(moved, home), admin), moved
    pinned = {**home, "ca_bundle": pem}
    assert not may_send_secret(_row(home, pinned), None)  # the pinned CA removed: the system store decides
    # a secret from before approvals were recorded has no approved target: an admin registers it once
    assert not may_send_secret(_row(home, None), None) and not may_send_secret(_row(home, None), operator)


def test_approval_is_recorded_without_a_secret_value(api: Api) -> None:
    op = api.token(role="operator")
    iid = create_integration(api.client, op, "gitlab_issues")
    api.client.post(_base(iid) + "/generate", headers=op)
    secret = api.client.post(_base(iid) + "/reveal", headers=api.token()).json()["secret"]
    with api.state.sessions() as s:
        row = s.get_one(Integration, uuid.UUID(iid))
        assert row.webhook_state["approved_target"] == target_fingerprint(row.connection)
        assert secret not in json.dumps(row.webhook_state)
        events = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == row.id)).all()
    assert all(secret not in str(e.detail) for e in events)


def test_a_first_secret_cannot_be_sent_to_a_target_moved_before_it_existed(
        served: Served, sandbox: SandboxServer) -> None:
    # tickets opened through an integration make its future secret worth having: generating one after
    # moving the target does not make the operator's server its home
    op, admin = served.token(role="operator"), served.token()
    iid = create_integration(served.http, admin, "github_issues", base=sandbox.base_url)
    with serve_receiver(upstream=sandbox.base_url) as mitm:
        origin = mitm.url.split("/hooks/")[0]
        assert served.http.patch(f"/api/v1/integrations/{iid}", json=_moved("github_issues", origin, "ok"),
                                 headers=op).status_code == 200
        assert served.http.get(_base(iid), headers=op).json()["target_approved"] is False
        refused = served.http.post(_base(iid) + "/auto-setup", headers=op)
        assert refused.status_code == 403, refused.text
        secret = served.http.post(_base(iid) + "/reveal", headers=admin).json()["secret"]  # generated, sent nowhere
        assert served.http.post(_base(iid) + "/register", headers=op).status_code == 403
        assert not any(carries(request, secret) for request in mitm.deliveries)
        assert not any(request.path.endswith("/hooks") for request in mitm.deliveries)
