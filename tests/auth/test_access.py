"""Roles and organization boundaries hold on every endpoint."""

from __future__ import annotations

import re
import uuid

import pytest

from tests.conftest import Api

BODY = {"name": "t", "vendor": "tenable_vm", "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}}


def test_no_or_bad_token_is_401(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}):
        r = api.client.get("/api/v1/integrations", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "authentication_required"
    valid = api.token()["Authorization"].split()[1]
    r = api.client.get("/api/v1/integrations", headers={"Authorization": f"Basic {valid}"})
    assert r.status_code == 401


def test_every_api_route_needs_a_token(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    calls = [(m, re.sub(r"\{[^}]+\}", str(uuid.uuid4()), p)) for p, ops in paths.items() if p.startswith("/api/v1/")
             for m in ops]
    assert len(calls) > 30
    for method, path in calls:
        r = api.client.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)


def test_viewer_reads_operator_writes_admin_audits(api: Api) -> None:
    viewer, operator, admin = api.token(role="viewer"), api.token(role="operator"), api.token(role="admin")
    assert api.client.post("/api/v1/integrations", json=BODY, headers=viewer).status_code == 403
    r = api.client.post("/api/v1/integrations", json=BODY, headers=operator)
    assert r.status_code == 201
    iid = r.json()["id"]
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=viewer).status_code == 200
    assert api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": False}, headers=viewer).status_code == 403
    assert api.client.delete(f"/api/v1/integrations/{iid}", headers=viewer).status_code == 403
    assert api.client.post("/api/v1/integrations/test", json=BODY, headers=viewer).status_code == 403
    assert api.client.post(f"/api/v1/integrations/{iid}/test", headers=viewer).status_code == 403
    assert api.client.get("/api/v1/audit-events", headers=operator).status_code == 403
    assert api.client.get("/api/v1/audit-events", headers=admin).status_code == 200
    assert api.client.get("/api/v1/tokens", headers=operator).status_code == 403
    assert api.client.post("/api/v1/tokens", json={"name": "x", "role": "viewer"}, headers=operator).status_code == 403
    # each refusal is on record for the admins: who tried what, and the role it needs
    denied = api.client.get("/api/v1/audit-events", params={"action": "access.denied"}, headers=admin).json()["items"]
    tried = {(e["detail"]["method"], e["detail"]["path"], e["detail"]["needs"], e["outcome"]) for e in denied}
    assert ("POST", "/api/v1/integrations", "operator", "failure") in tried
    assert ("POST", "/api/v1/tokens", "admin", "failure") in tried and len(denied) == 8


def test_other_organization_sees_404_never_403(api: Api) -> None:
    mine, theirs = api.token("acme", "admin"), api.token("globex", "admin")
    iid = api.client.post("/api/v1/integrations", json=BODY, headers=mine).json()["id"]
    for method in ("get", "delete"):
        assert getattr(api.client, method)(f"/api/v1/integrations/{iid}", headers=theirs).status_code == 404
    assert api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": False}, headers=theirs).status_code == 404
    assert api.client.post(f"/api/v1/integrations/{iid}/test", headers=theirs).status_code == 404
    assert api.client.get("/api/v1/integrations", headers=theirs).json()["items"] == []
    assert api.client.get(f"/api/v1/integrations/{uuid.uuid4()}", headers=mine).status_code == 404
    assert api.client.get(f"/api/v1/integrations/{iid}", headers=mine).status_code == 200


def test_token_lifecycle(api: Api) -> None:
    admin = api.token(role="admin")
    r = api.client.post("/api/v1/tokens", json={"name": "ci", "role": "operator"}, headers=admin)
    assert r.status_code == 201
    token, tid = r.json()["token"], r.json()["id"]
    assert token.startswith("pmap_") and len(token) >= len("pmap_") + 43  # 256 bits, URL-safe base64
    h = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/whoami", headers=h).json() == {"organization": "acme", "token_name": "ci",
                                                                   "role": "operator"}
    listed = api.client.get("/api/v1/tokens", headers=admin).json()["items"]
    assert token not in str(listed) and any(t["id"] == tid for t in listed)
    assert api.client.delete(f"/api/v1/tokens/{tid}", headers=admin).status_code == 200
    assert api.client.get("/api/v1/whoami", headers=h).status_code == 401
    again = api.client.delete(f"/api/v1/tokens/{tid}", headers=admin)
    assert again.status_code == 200 and again.json()["revoked_at"]
    revokes = api.client.get("/api/v1/audit-events", params={"action": "token.revoke"}, headers=admin).json()["items"]
    assert [e["detail"]["token_id"] for e in revokes] == [tid]  # recorded once


def test_the_audit_actor_names_the_token_whatever_its_name(api: Api) -> None:
    """Token names are labels (every `pmapctl tokens create` token is 'cli' unless named): the audit
    actor carries the token id; a 200-character name still fits the actor column (no 500)."""
    admin = api.token(role="admin")
    made = [api.client.post("/api/v1/tokens", json={"name": name, "role": "admin"}, headers=admin).json()
            for name in ("cli", "cli", "n" * 200)]
    iid = api.client.post("/api/v1/integrations", json={**BODY, "vendor": "github_issues",
                                                        "credentials": {"token": "ghp_" + "a" * 36}},
                          headers=admin).json()["id"]
    for token in made:
        r = api.client.post(f"/api/v1/integrations/{iid}/webhook/regenerate", json={"grace_seconds": 0},
                            headers={"Authorization": f"Bearer {token['token']}"})
        assert r.status_code == 200, r.text
    events = api.client.get("/api/v1/audit-events", params={"action": "webhook.secret.regenerate"},
                            headers=admin).json()["items"]
    actors = [e["actor"] for e in reversed(events)]
    assert len(set(actors)) == 3 and all(len(a) <= 200 for a in actors)
    assert [a.endswith(f"#{t['id']}") for a, t in zip(actors, made, strict=True)] == [True, True, True]
    assert actors[0].startswith("token:cli#")


def test_tokens_stored_only_as_hashes(api: Api) -> None:
    from sqlalchemy import select

    from pmap.auth.models import ApiToken

    h = api.token()
    value = h["Authorization"].split()[1]
    with api.state.sessions() as s:
        rows = s.scalars(select(ApiToken)).all()
    assert rows and all(value not in (r.token_hash + r.name) for r in rows)


@pytest.mark.parametrize("role", ["bogus", ""])
def test_bad_role_rejected(api: Api, role: str) -> None:
    r = api.client.post("/api/v1/tokens", json={"name": "x", "role": role}, headers=api.token())
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "role"


def test_a_token_in_use_shows_when_it_was_last_used(api: Api) -> None:
    admin = api.token(role="admin")
    created = api.client.post("/api/v1/tokens", json={"name": "ci", "role": "viewer"}, headers=admin).json()
    assert created["last_used_at"] is None
    assert api.client.get("/api/v1/whoami", headers={"Authorization": f"Bearer {created['token']}"}).status_code == 200
    listed = {t["id"]: t for t in api.client.get("/api/v1/tokens", headers=admin).json()["items"]}
    assert listed[created["id"]]["last_used_at"] is not None
    assert all(t["last_used_at"] for t in listed.values() if t["name"].startswith("test-admin"))
