"""OAuth 2.0 client credentials through PMAP's API against the sandbox: the client secret (a canary) and the
access tokens the vendor minted surface nowhere (responses, logs, the database); a half or double kind is
a 422 that names the fields and echoes no value."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from pmap.connectors.catalog import connector_types
from pmap.connectors.vendors import _oauth
from pmap_sandbox.server import SandboxServer, build_app
from pmap_sandbox.work._oauth import OAuthTokens
from tests.conftest import Api, canary
from tests.security.test_canary_hunt import _dump

OAUTH_VENDORS = {"servicenow": ({}, "/servicenow"),
                 "jira_service_management": ({"service_desk_id": "1", "request_type_id": "10"},
                                             "/jira_service_management"),
                 "checkmarx_one": ({"tenant": "sandbox"}, "/checkmarx_one")}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(build_app()) as server:
        yield server


def _minted(sandbox: SandboxServer) -> list[str]:
    """Every access token the sandbox issued."""
    root: dict[str, Any] = getattr(sandbox.app.state, "sandbox_store", {})
    tokens = list(root.get("checkmarx_one", {}).get("tokens", {}))
    for slots in root.values():
        store = slots.get(OAuthTokens.__qualname__) if isinstance(slots, dict) else None
        if isinstance(store, OAuthTokens):
            tokens += list(store.tokens)
    return tokens


def test_oauth_secrets_and_minted_tokens_surface_nowhere(api: Api, sandbox: SandboxServer, db_url: str,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    _oauth.CACHE.clear()
    h = api.token()
    planted, texts = [], []
    logging.getLogger("pmap").setLevel(logging.DEBUG)
    for vendor, (extra, path) in OAUTH_VENDORS.items():
        secret = canary("oauth" + vendor)
        planted.append(secret)
        body = {"name": f"{vendor}-oauth", "vendor": vendor,
                "connection": {"base_url": sandbox.base_url + path, **extra},
                "credentials": {"client_id": f"pmap-{vendor}", "client_secret": secret}}
        r = api.client.post("/api/v1/integrations", json=body, headers=h)
        assert r.status_code == 201, r.text
        iid = r.json()["id"]
        texts.append(r.text)
        for _ in range(2):  # the second runs on the cached token
            r = api.client.post(f"/api/v1/integrations/{iid}/test", headers=h)
            assert r.status_code == 200 and r.json()["ok"] is True, r.text
            assert _oauth.AUTHENTICATED_WITH_OAUTH in r.json()["message"]
            texts.append(r.text)
        r = api.client.post(f"/api/v1/integrations/{iid}/permissions-check", headers=h)
        texts.append(r.text)
        texts.append(api.client.get(f"/api/v1/integrations/{iid}", headers=h).text)
    texts.append(api.client.get("/api/v1/audit-events", headers=h).text)
    minted = _minted(sandbox)
    assert len(minted) >= len(OAUTH_VENDORS)
    logs = capfd.readouterr()
    everything = "\n".join(texts) + logs.out + logs.err
    dump = _dump(db_url)
    for value in [*planted, *minted]:
        assert value not in everything, "an OAuth secret or a minted token leaked into a response or a log line"
        assert value.encode() not in dump, "an OAuth secret or a minted token is stored in plaintext"


@pytest.mark.parametrize("vendor", sorted(OAUTH_VENDORS))
@pytest.mark.parametrize("case", ["both", "half_oauth", "half_other", "none"])
def test_both_kinds_or_half_a_kind_is_a_422(vendor: str, case: str, api: Api) -> None:
    model = connector_types()[vendor].credentials_model
    kinds: dict[str, tuple[str, ...]] = model.credential_kinds  # type: ignore[attr-defined]
    other = next(fields for kind, fields in kinds.items() if kind != _oauth.OAUTH)
    secret = canary("kind")

    def values(fields: tuple[str, ...]) -> dict[str, str]:
        return {f: secret if f in ("client_secret", "password", "api_token", "api_key") else f"user-{f}@acme.test"
                for f in fields}

    credentials = {"both": {**values(other), **values(_oauth.OAUTH_FIELDS)},
                   "half_oauth": values(("client_secret",)),
                   "half_other": {**values(other[:1]), **values(_oauth.OAUTH_FIELDS)} if len(other) > 1
                   else values(("client_id",)),
                   "none": {}}[case]
    extra, path = OAUTH_VENDORS[vendor]
    body = {"name": "x", "vendor": vendor, "connection": {"base_url": f"https://{vendor}.acme.test{path}", **extra},
            "credentials": credentials}
    r = api.client.post("/api/v1/integrations", json=body, headers=api.token())
    assert r.status_code == 422, r.text
    assert secret not in r.text
    assert "client_id" in r.text and "client_secret" in r.text  # the message names the fields of each kind


def test_a_saved_basic_integration_tests_an_oauth_overlay(api: Api, sandbox: SandboxServer) -> None:
    h = api.token()
    body = {"name": "sn", "vendor": "servicenow", "connection": {"base_url": sandbox.base_url + "/servicenow"},
            "credentials": {"username": "pmap.integration", "password": canary("basic")}}
    r = api.client.post("/api/v1/integrations", json=body, headers=h)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    oauth = {"client_id": "pmap-overlay", "client_secret": canary("overlay")}
    r = api.client.post(f"/api/v1/integrations/{iid}/test", json={"credentials": oauth}, headers=h)
    assert r.status_code == 200 and r.json()["ok"] is True, r.text
    assert _oauth.AUTHENTICATED_WITH_OAUTH in r.json()["message"] and oauth["client_secret"] not in r.text
    r = api.client.post(f"/api/v1/integrations/{iid}/test", headers=h)  # the saved kind is untouched
    assert r.json()["ok"] is True and "OAuth" not in r.json()["message"]
