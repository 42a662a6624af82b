"""GitHub App credentials over real HTTP to the sandbox: PMAP signs the App's RS256 JWT, mints one
installation token per operation, and neither the key, the JWT nor the token surfaces in any message."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from pmap.connectors.base import TicketRequest
from pmap.connectors.vendors._github_app import AUTHENTICATED_AS_APP, GitHubTokenOrApp, app_jwt
from pmap.core.settings import Settings
from pmap_sandbox.github_app import mints, register_app
from pmap_sandbox.server import SandboxServer

from .cases import implementation, settings_for, unique
from .conftest import context, run_test

VENDOR = "github_issues"


def _key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    return key, pem


def _app(sandbox: SandboxServer, vendor: str = VENDOR, register: bool = True,
         one_line: str = "base64") -> tuple[dict[str, Any], dict[str, str]]:
    key, pem = _key()
    app_id = unique("x").split("-")[1][:9].lstrip("0") or "7"
    if register:
        public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        register_app(sandbox.app, "github_actions" if vendor == "github" else vendor, app_id, public)
    value = base64.b64encode(pem.encode()).decode() if one_line == "base64" else " ".join(pem.split("\n")).strip()
    connection, _token = settings_for(vendor, sandbox.base_url)
    return connection, {"app_id": app_id, "installation_id": "4242", "private_key": value}


@pytest.mark.parametrize("one_line", ["base64", "spaces"])
def test_github_app_connection_test_and_ticket(one_line: str, sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _app(sandbox, one_line=one_line)
    before = mints(sandbox.app, VENDOR)
    result = run_test(dev_settings, VENDOR, connection, credentials)
    assert result.ok, result.message
    assert result.message is not None and result.message.startswith(AUTHENTICATED_AS_APP)
    ctx = context(dev_settings, VENDOR, connection, credentials, purpose="ticket")
    ref = implementation(VENDOR).create_ticket(ctx, TicketRequest(title="Leaked key", description="Rotate it."))
    assert ref.key and implementation(VENDOR).sync_status(ctx, ref.key).done is False
    assert mints(sandbox.app, VENDOR) == before + 2  # one installation token per operation


def test_github_actions_with_an_app(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _app(sandbox, vendor="github")
    result = run_test(dev_settings, "github", connection, credentials)
    assert result.ok and result.message is not None and AUTHENTICATED_AS_APP in result.message, result


def test_an_unknown_app_key_fails_at_auth_without_leaking(sandbox: SandboxServer, dev_settings: Settings,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    connection, credentials = _app(sandbox, register=False)
    with caplog.at_level(logging.DEBUG):
        result = run_test(dev_settings, VENDOR, connection, credentials)
    assert not result.ok and result.failed_step == "auth", result
    everything = result.model_dump_json() + caplog.text
    assert credentials["private_key"] not in everything and "eyJ" not in everything  # no key, no JWT


def test_an_unreadable_private_key_is_step_auth(sandbox: SandboxServer, dev_settings: Settings) -> None:
    connection, credentials = _app(sandbox)
    credentials["private_key"] = "bm90IGEga2V5IGF0IGFsbA=="
    result = run_test(dev_settings, VENDOR, connection, credentials)
    assert result.failed_step == "auth" and "private key could not be read" in (result.message or "")
    assert credentials["private_key"] not in (result.message or "")


def test_token_and_app_together_or_half_an_app_is_refused() -> None:
    with pytest.raises(ValidationError, match="not several"):
        GitHubTokenOrApp.model_validate({"token": "ghp_x-0001", "app_id": "1", "installation_id": "2",
                                         "private_key": "a2V5LWJ5dGVz"})
    with pytest.raises(ValidationError, match="app_id and installation_id given without private_key"):
        GitHubTokenOrApp.model_validate({"app_id": "1", "installation_id": "2"})
    assert GitHubTokenOrApp.model_validate({"token": "ghp_x-0001"}).token is not None  # stored tokens still work


def test_the_app_jwt_is_short_lived_rs256() -> None:
    key, _pem = _key()
    jwt = app_jwt("123", key, now=1_700_000_000)
    header, payload, _sig = jwt.split(".")
    import json

    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["alg"] == "RS256"
    assert claims["iss"] == "123" and claims["iat"] == 1_700_000_000 - 60 and claims["exp"] - claims["iat"] <= 600


def test_github_code_scanning_with_an_app(sandbox: SandboxServer, dev_settings: Settings) -> None:
    key, pem = _key()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    register_app(sandbox.app, "github_code_scanning", "31337", public)
    connection = {"base_url": sandbox.base_url + "/github_code_scanning", "repository": "example/shop"}
    credentials = {"app_id": "31337", "installation_id": "99",
                   "private_key": base64.b64encode(pem.encode()).decode()}
    result = run_test(dev_settings, "github_code_scanning", connection, credentials)
    assert result.ok and AUTHENTICATED_AS_APP in (result.message or ""), result
    report = implementation("github_code_scanning").check_permissions(
        context(dev_settings, "github_code_scanning", connection, credentials, purpose="permissions"))
    assert report.permissions and any("App" in w for w in report.warnings)
