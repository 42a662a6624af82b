"""Web console sessions: what the cookie opens, for how long, and what it cannot do without the CSRF token."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from pmap.auth.models import ConsoleSession
from pmap.auth.service import hash_token
from pmap.core.db import utcnow
from tests.conftest import Api

COOKIE = "pmap_session"


def _bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].split()[1]


def _sign_in(api: Api, token: str, **headers: str) -> Any:
    api.client.cookies.clear()
    return api.client.post("/sign-in", data={"token": token}, headers=headers, follow_redirects=False)


def _session_cookie(r: Any, name: str = COOKIE) -> str | None:
    """The Set-Cookie header of the session cookie, if the answer set one."""
    return next((c for c in r.headers.get_list("set-cookie") if c.startswith(f"{name}=")), None)


def _csrf(api: Api) -> str:
    page = api.client.get("/integrations")
    assert page.status_code == 200, page.text
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match
    return match.group(1)


def test_signing_in_sets_a_strict_httponly_cookie_whose_hash_alone_is_stored(api: Api) -> None:
    token = _bearer(api.token(role="operator"))
    r = _sign_in(api, token)
    assert r.status_code == 303 and r.headers["location"] == "/integrations"
    set_cookie = _session_cookie(r)
    assert set_cookie and "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
    assert "Secure" not in set_cookie  # development over http; production below
    value = api.client.cookies[COOKIE]
    with api.state.sessions() as s:
        rows = s.scalars(select(ConsoleSession)).all()
        assert [r.session_hash for r in rows] == [hash_token(value)]
        assert all(value not in (r.csrf_token + r.session_hash) for r in rows)
    assert api.client.get("/api/v1/whoami").json()["role"] == "operator"
    assert token not in r.text and token not in set_cookie


def test_production_cookies_are_secure_and_host_only(make_api: Any) -> None:
    api = make_api(env="production", public_base_url="https://pmap.acme.test")
    token = _bearer(api.token())
    r = _sign_in(api, token)
    assert r.status_code == 303
    cookie = _session_cookie(r, "__Host-pmap_session")
    assert cookie and "Secure" in cookie and "Path=/" in cookie
    assert "Domain" not in cookie
    assert "Strict-Transport-Security" in api.client.get("/sign-in").headers


def test_a_wrong_token_starts_no_session_and_is_not_echoed(api: Api) -> None:
    r = _sign_in(api, "pmap_wrong-token-0123456789abcdef")
    assert r.status_code == 401 and "invalid, expired or revoked token" in r.text
    assert "wrong-token-0123456789abcdef" not in r.text and _session_cookie(r) is None
    with api.state.sessions() as s:
        assert s.scalars(select(ConsoleSession)).all() == []


@pytest.mark.parametrize("headers", [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                                     {"Sec-Fetch-Site": "same-site"}])
def test_a_sign_in_posted_from_another_site_is_refused(api: Api, headers: dict[str, str]) -> None:
    r = _sign_in(api, _bearer(api.token()), **headers)
    assert r.status_code == 403 and _session_cookie(r) is None


def test_the_sign_in_page_of_pmap_itself_may_post(api: Api) -> None:
    assert _sign_in(api, _bearer(api.token()), **{"Sec-Fetch-Site": "same-origin"}).status_code == 303
    # a browser that sends no Sec-Fetch-Site (plain HTTP on a named host) and `Origin: null` (no-referrer): the
    # page's double-submit value, in its HttpOnly cookie and its hidden field, shows the form is PMAP's own
    api.client.cookies.clear()
    form = api.client.get("/sign-in")
    match = re.search(r'name="sign_in_token" value="([^"]+)"', form.text)
    assert match and api.client.cookies.get("pmap_sign_in") == match.group(1)
    token = _bearer(api.token())
    forged = api.client.post("/sign-in", data={"token": token, "sign_in_token": "forged"},
                             headers={"Origin": "null"}, follow_redirects=False)
    assert forged.status_code == 403 and _session_cookie(forged) is None
    form = api.client.get("/sign-in")
    match = re.search(r'name="sign_in_token" value="([^"]+)"', form.text)
    assert match
    r = api.client.post("/sign-in", data={"token": token, "sign_in_token": match.group(1)},
                        headers={"Origin": "null"}, follow_redirects=False)
    assert r.status_code == 303 and _session_cookie(r)
    # another site can make the browser post the form, but cannot read the value nor send the cookie (Strict)
    api.client.cookies.clear()
    r = api.client.post("/sign-in", data={"token": token, "sign_in_token": match.group(1)},
                        headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert r.status_code == 403


def test_state_changing_calls_need_the_sessions_csrf_token(api: Api) -> None:
    _sign_in(api, _bearer(api.token(role="admin")))
    body = {"name": "from the console", "role": "viewer"}
    refused = api.client.post("/api/v1/tokens", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert api.client.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert api.client.post("/api/v1/tokens", json=body, headers={"X-CSRF-Token": _csrf(api)}).status_code == 201
    assert api.client.get("/api/v1/tokens").status_code == 200  # reads need none


def test_a_bearer_token_needs_no_csrf_token_even_with_a_cookie(api: Api) -> None:
    admin = api.token(role="admin")
    _sign_in(api, _bearer(api.token(role="viewer")))
    r = api.client.post("/api/v1/tokens", json={"name": "cli", "role": "viewer"}, headers=admin)
    assert r.status_code == 201  # the header, not the ambient cookie, authenticates: no CSRF to fear


def test_the_session_has_its_tokens_role_and_the_server_enforces_it(api: Api) -> None:
    _sign_in(api, _bearer(api.token(role="viewer")))
    csrf = _csrf(api)
    r = api.client.post("/api/v1/tokens", json={"name": "x", "role": "admin"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 403
    assert api.client.get("/audit").status_code == 403  # the page too


def test_sign_out_ends_the_session_on_the_server(api: Api) -> None:
    _sign_in(api, _bearer(api.token()))
    value = api.client.cookies[COOKIE]
    csrf = _csrf(api)
    assert api.client.post("/sign-out", data={"csrf_token": "forged"}).status_code == 403  # a cross-site sign-out
    r = api.client.post("/sign-out", data={"csrf_token": csrf}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/sign-in"
    api.client.cookies.set(COOKIE, value)  # the old cookie, replayed
    assert api.client.get("/api/v1/whoami").status_code == 401
    assert api.client.get("/integrations", follow_redirects=False).headers["location"] == "/sign-in"


@pytest.mark.parametrize("what", ["idle", "lifetime"])
def test_an_idle_or_too_old_session_ends(api: Api, what: str) -> None:
    _sign_in(api, _bearer(api.token()))
    assert api.client.get("/api/v1/whoami").status_code == 200
    past = utcnow() - timedelta(minutes=api.state.settings.console_idle_minutes + 1)
    change = {"last_seen_at": past} if what == "idle" else {"expires_at": utcnow() - timedelta(seconds=1)}
    with api.state.sessions() as s:
        s.execute(update(ConsoleSession).values(**change))
        s.commit()
    assert api.client.get("/api/v1/whoami").status_code == 401


def test_activity_keeps_a_session_alive(api: Api) -> None:
    _sign_in(api, _bearer(api.token()))
    almost = utcnow() - timedelta(minutes=api.state.settings.console_idle_minutes - 1)
    with api.state.sessions() as s:
        s.execute(update(ConsoleSession).values(last_seen_at=almost))
        s.commit()
    assert api.client.get("/api/v1/whoami").status_code == 200
    with api.state.sessions() as s:
        assert s.scalars(select(ConsoleSession.last_seen_at)).one() > almost + timedelta(minutes=1)


def test_revoking_the_token_ends_its_sessions(api: Api) -> None:
    admin = api.token(role="admin")
    created = api.client.post("/api/v1/tokens", json={"name": "laptop", "role": "operator"}, headers=admin).json()
    _sign_in(api, created["token"])
    assert api.client.get("/api/v1/whoami").status_code == 200
    api.client.delete(f"/api/v1/tokens/{created['id']}", headers=admin)
    assert api.client.get("/api/v1/whoami").status_code == 401


def test_sign_in_and_out_are_audited_without_the_cookie_or_token(api: Api) -> None:
    admin = api.token(role="admin")
    token = _bearer(api.token(role="operator"))
    _sign_in(api, token)
    value = api.client.cookies[COOKIE]
    api.client.post("/sign-out", data={"csrf_token": _csrf(api)})
    api.client.cookies.clear()
    events = api.client.get("/api/v1/audit-events", headers=admin).json()["items"]
    actions = [e["action"] for e in events]
    assert "session.start" in actions and "session.end" in actions
    text = repr(events)
    assert token not in text and value not in text


def test_pages_need_a_session_and_are_never_cached(api: Api) -> None:
    assert api.client.get("/integrations", follow_redirects=False).headers["location"] == "/sign-in"
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/sign-in"
    _sign_in(api, _bearer(api.token()))
    page = api.client.get("/integrations")
    assert page.headers["cache-control"] == "no-store"
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert page.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/integrations/%2e%2e", "/findings/not-an-id",
                                  "/integrations/x%3Cscript%3E/edit"])
def test_a_page_whose_id_is_not_an_id_is_not_drawn(api: Api, path: str) -> None:
    _sign_in(api, _bearer(api.token()))
    r = api.client.get(path, follow_redirects=False)
    assert r.status_code == 404 and "data-script" not in r.text and "<script>" not in r.text
