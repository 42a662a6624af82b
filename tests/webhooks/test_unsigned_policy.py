"""Allowing unsigned webhook deliveries: in production only an admin may turn it on; every change is
audited under its own action; the integration and its webhook status warn while it is on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tests.conftest import Api, canary

from .conftest import integration_body, payload, unique

ACTION = "webhook.allow_unsigned"


def _events(api: Api, headers: dict[str, str], action: str) -> list[dict[str, Any]]:
    items = api.client.get("/api/v1/audit-events", params={"limit": 200}, headers=headers).json()["items"]
    return [e for e in items if e["action"] == action]


def test_in_production_only_an_admin_may_allow_unsigned_webhooks(make_api: Callable[..., Api]) -> None:
    prod = make_api(env="production")
    op, admin = prod.token(role="operator"), prod.token()
    secret = canary("unsigned")
    body = {**integration_body("github_issues"), "allow_unsigned_webhooks": True}
    body["credentials"] = {k: secret for k in body["credentials"]}
    r = prod.client.post("/api/v1/integrations", json=body, headers=op)
    assert r.status_code == 403 and "admin" in r.json()["error"]["message"], r.text
    assert prod.client.get("/api/v1/integrations", headers=op).json()["items"] == []  # nothing written
    refused = {**body, "allow_unsigned_webhooks": False}
    iid = prod.client.post("/api/v1/integrations", json=refused, headers=op).json()["id"]
    url = f"/api/v1/integrations/{iid}"
    r = prod.client.patch(url, json={"allow_unsigned_webhooks": True, "name": unique("n")}, headers=op)
    assert r.status_code == 403, r.text
    assert prod.client.get(url, headers=op).json()["allow_unsigned_webhooks"] is False
    denied = [e for e in _events(prod, admin, "access.denied")
              if e["detail"].get("field") == "allow_unsigned_webhooks"]
    assert len(denied) == 2 and all(e["detail"]["needs"] == "admin" for e in denied)

    r = prod.client.patch(url, json={"allow_unsigned_webhooks": True}, headers=admin)
    assert r.status_code == 200 and r.json()["allow_unsigned_webhooks"] is True
    assert any("unsigned" in w for w in r.json()["warnings"])
    status = prod.client.get(url + "/webhook", headers=op).json()
    assert status["allow_unsigned"] is True
    assert any("unsigned webhook deliveries are accepted" in w for w in status["warnings"])
    unsigned = {"Content-Type": "application/json", "X-GitHub-Delivery": unique("d"), "X-GitHub-Event": "push"}
    assert prod.client.post(f"/hooks/{iid}", content=payload("github"), headers=unsigned).status_code == 202
    # an operator may edit the rest, send the value unchanged, and turn it off
    unchanged = {"name": unique("n"), "allow_unsigned_webhooks": True}
    assert prod.client.patch(url, json=unchanged, headers=op).status_code == 200
    r = prod.client.patch(url, json={"allow_unsigned_webhooks": False}, headers=op)
    assert r.status_code == 200 and not any("unsigned" in w for w in r.json()["warnings"])
    created = prod.client.post("/api/v1/integrations", headers=admin,
                               json={**body, "name": unique("by-admin")})
    assert created.status_code == 201 and created.json()["allow_unsigned_webhooks"] is True

    changes = _events(prod, admin, ACTION)
    assert [(e["detail"]["allow_unsigned_webhooks"], e["integration_id"]) for e in reversed(changes)] == [
        (True, iid), (False, iid), (True, created.json()["id"])]
    assert all(e["outcome"] == "success" and e["detail"]["production"] is True for e in changes)
    everything = json.dumps(prod.client.get("/api/v1/audit-events", params={"limit": 200}, headers=admin).json())
    assert secret not in everything


def test_development_lets_an_operator_allow_unsigned_webhooks_and_audits_it(api: Api) -> None:
    op = api.token(role="operator")
    body = {**integration_body("jira_cloud"), "allow_unsigned_webhooks": True}
    r = api.client.post("/api/v1/integrations", json=body, headers=op)
    assert r.status_code == 201 and any("unsigned" in w for w in r.json()["warnings"])
    iid = r.json()["id"]
    r = api.client.patch(f"/api/v1/integrations/{iid}", json={"allow_unsigned_webhooks": False}, headers=op)
    assert r.status_code == 200
    changes = _events(api, api.token(), ACTION)
    assert [e["detail"] for e in reversed(changes)] == [
        {"allow_unsigned_webhooks": True, "production": False}, {"allow_unsigned_webhooks": False, "production": False}]
