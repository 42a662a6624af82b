"""Token lifecycle: every creation and revocation audited, the last admin kept, expiry, the schema."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, update

from pmap.app import create_app
from pmap.auth.models import ApiToken
from pmap.core.db import Base, transaction, utcnow
from pmap.core.settings import Settings
from tests.conftest import Api

LAST_ADMIN = "the organization would be left without an active admin token"


def _token_id(api: Api, headers: dict[str, str]) -> str:
    value = headers["Authorization"].split()[1]
    return next(t["id"] for t in api.client.get("/api/v1/tokens", headers=headers).json()["items"]
                if value.startswith(t["prefix"]))


def _expire(api: Api, token_id: str) -> None:
    with transaction(api.state.sessions) as s:
        s.execute(update(ApiToken).where(ApiToken.id == uuid.UUID(token_id))
                  .values(expires_at=utcnow() - timedelta(seconds=1)))


def _events(api: Api, headers: dict[str, str], action: str) -> list[dict]:
    params = {"action": action, "limit": 500}
    return api.client.get("/api/v1/audit-events", params=params, headers=headers).json()["items"]


def test_the_last_active_admin_token_cannot_be_revoked(api: Api) -> None:
    first = api.token("acme", "admin")
    api.token("globex", "admin")  # another organization's admin keeps nobody in acme in
    first_id = _token_id(api, first)
    r = api.client.delete(f"/api/v1/tokens/{first_id}", headers=first)
    error = r.json()["error"]
    assert r.status_code == 409 and error["code"] == "conflict" and LAST_ADMIN in error["message"]
    assert api.client.get("/api/v1/whoami", headers=first).status_code == 200
    # revoking a viewer is fine; a second admin makes revoking the first fine too
    viewer_id = api.client.post("/api/v1/tokens", json={"name": "v", "role": "viewer"}, headers=first).json()["id"]
    assert api.client.delete(f"/api/v1/tokens/{viewer_id}", headers=first).status_code == 200
    second = api.client.post("/api/v1/tokens", json={"name": "second", "role": "admin"}, headers=first).json()
    second_h = {"Authorization": f"Bearer {second['token']}"}
    assert api.client.delete(f"/api/v1/tokens/{first_id}", headers=second_h).status_code == 200
    assert api.client.delete(f"/api/v1/tokens/{second['id']}", headers=second_h).status_code == 409
    # an expired admin does not count as one that keeps the organization administered
    third = api.client.post("/api/v1/tokens", json={"name": "third", "role": "admin"}, headers=second_h).json()
    _expire(api, third["id"])
    r = api.client.delete(f"/api/v1/tokens/{second['id']}", headers=second_h)
    assert r.status_code == 409 and LAST_ADMIN in r.json()["error"]["message"]
    # revoking the expired one is allowed (it keeps nobody in)
    assert api.client.delete(f"/api/v1/tokens/{third['id']}", headers=second_h).status_code == 200


def test_two_admins_revoking_each_other_at_once_leave_one(api: Api) -> None:
    for round_ in range(15):
        org = f"race{round_}"
        a, b = api.token(org, "admin"), api.token(org, "admin")
        ids = {"a": _token_id(api, a), "b": _token_id(api, b)}
        barrier, out = threading.Barrier(2), dict[str, int]()

        def revoke(me: str, headers: dict[str, str], other: str, barrier: threading.Barrier = barrier,
                   out: dict[str, int] = out, ids: dict[str, str] = ids) -> None:
            barrier.wait()
            out[me] = api.client.delete(f"/api/v1/tokens/{ids[other]}", headers=headers).status_code

        threads = [threading.Thread(target=revoke, args=("a", a, "b")),
                   threading.Thread(target=revoke, args=("b", b, "a"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        # one revocation wins; the other is refused (409) or its own token is already revoked (401)
        assert sorted(out.values()) in ([200, 401], [200, 409]), out
        with api.state.sessions() as s:
            alive = [t for t in s.query(ApiToken).filter(ApiToken.id.in_([uuid.UUID(i) for i in ids.values()]))
                     if t.revoked_at is None]
        assert len(alive) == 1


def test_every_token_creation_and_revocation_is_audited_without_its_value(api: Api) -> None:
    admin = api.token("acme", "admin")
    made = api.client.post("/api/v1/tokens", json={"name": "ci", "role": "operator", "expires_in_days": 7},
                           headers=admin).json()
    assert api.client.delete(f"/api/v1/tokens/{made['id']}", headers=admin).status_code == 200
    created = {e["detail"]["token_id"]: e for e in _events(api, admin, "token.create")}
    # the fixture's own token is on record too (its origin named), not only the API's
    assert created[_token_id(api, admin)]["actor"].startswith("system:")
    mine = created[made["id"]]
    assert mine["actor"].startswith("token:test-admin#")
    assert mine["detail"] == {"token_id": made["id"], "role": "operator", "name": "ci",
                              "expires_at": made["expires_at"]}
    revoked = _events(api, admin, "token.revoke")
    assert [e["detail"]["token_id"] for e in revoked] == [made["id"]]
    assert revoked[0]["detail"]["role"] == "operator" and revoked[0]["detail"]["name"] == "ci"
    everything = json.dumps(api.client.get("/api/v1/audit-events", params={"limit": 500}, headers=admin).json())
    assert made["token"] not in everything and admin["Authorization"].split()[1] not in everything


def test_the_bootstrap_admin_token_is_audited(db_url: str, platform_key: str, tmp_path: Path) -> None:
    value = "pmap_bootstrap_" + uuid.uuid4().hex
    settings = Settings(env="development", database_url=db_url, data_dir=tmp_path / "data", platform_key=platform_key,
                        bootstrap_admin_token=value)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        h = {"Authorization": f"Bearer {value}"}
        events = client.get("/api/v1/audit-events", params={"action": "token.create"}, headers=h).json()["items"]
    assert [(e["actor"], e["detail"]["name"], e["detail"]["role"]) for e in events] == [
        ("system:bootstrap", "bootstrap-admin", "admin")]
    assert value not in json.dumps(events)


def test_an_expired_token_is_refused_like_a_revoked_one(api: Api) -> None:
    admin = api.token("acme", "admin")
    before = utcnow()
    made = api.client.post("/api/v1/tokens", json={"name": "temp", "role": "viewer", "expires_in_days": 30},
                           headers=admin)
    assert made.status_code == 201, made.text
    body = made.json()
    expires = datetime.fromisoformat(body["expires_at"])
    assert before + timedelta(days=30) <= expires <= utcnow() + timedelta(days=30)
    listed = {t["id"]: t for t in api.client.get("/api/v1/tokens", headers=admin).json()["items"]}
    assert listed[body["id"]]["expires_at"] == body["expires_at"]
    assert listed[_token_id(api, admin)]["expires_at"] is None
    h = {"Authorization": f"Bearer {body['token']}"}
    assert api.client.get("/api/v1/whoami", headers=h).status_code == 200
    _expire(api, body["id"])
    expired = api.client.get("/api/v1/whoami", headers=h)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "authentication_required"
    unknown = api.client.get("/api/v1/whoami", headers={"Authorization": "Bearer pmap_unknown"})
    assert unknown.json()["error"]["message"] == expired.json()["error"]["message"]  # says nothing about which it was
    for bad in (0, -1, 3651, "soon", 1.5):
        r = api.client.post("/api/v1/tokens", json={"name": "x", "role": "viewer", "expires_in_days": bad},
                            headers=admin)
        assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "expires_in_days", bad


def test_migrations_match_the_models(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert [d for d in diff if "api_tokens" in repr(d)] == []


def test_an_organization_name_is_one_plain_line(api: Api) -> None:
    import pytest

    from pmap.auth.service import get_or_create_org
    from pmap.core.errors import ValidationFailed

    for name in ("acme\u202eevil", "acme\nops", "acme\x00", "a\u200bcme"):
        with transaction(api.state.sessions) as session, pytest.raises(ValidationFailed) as refused:
            get_or_create_org(session, name)
        assert name not in refused.value.message
    with transaction(api.state.sessions) as session:
        assert get_or_create_org(session, "Acme Sécurité").name == "Acme Sécurité"
