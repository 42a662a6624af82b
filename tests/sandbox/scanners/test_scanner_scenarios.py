"""Every scanner vendor honours the scenario markers, over real HTTP, in its own error shape."""

from __future__ import annotations

import httpx
import pytest

from pmap_sandbox.scanners import SANDBOX_VENDORS
from pmap_sandbox.server import SandboxServer

from .conftest import cred, vendor_url
from .probes import BAD_STATUS, MISSING_STATUS, PROBES, RATELIMIT_STATUS

VENDORS = sorted(PROBES)


def test_every_vendor_has_a_probe_and_a_descriptor() -> None:
    assert set(PROBES) == set(SANDBOX_VENDORS)
    for key, descriptor in SANDBOX_VENDORS.items():
        assert descriptor["base_path"].startswith(f"/{key}")
        assert descriptor["valid_credentials"], key


@pytest.mark.parametrize("key", VENDORS)
def test_good_credential_authenticates(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = PROBES[key](client, vendor_url(sandbox, key), cred("good"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("key", VENDORS)
def test_missing_credential_is_refused(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = PROBES[key](client, vendor_url(sandbox, key), None)
    assert response.status_code == MISSING_STATUS.get(key, 401), response.text


@pytest.mark.parametrize("key", VENDORS)
def test_bad_marker_gets_the_vendor_refusal(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("bad")
    response = PROBES[key](client, vendor_url(sandbox, key), value)
    assert response.status_code == BAD_STATUS.get(key, 401), response.text
    assert value not in response.text


@pytest.mark.parametrize("key", VENDORS)
def test_echo_marker_repeats_the_credential(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("echo")
    response = PROBES[key](client, vendor_url(sandbox, key), value)
    assert response.status_code in {400, 401, 403}
    assert value in response.text


@pytest.mark.parametrize("key", VENDORS)
def test_ratelimit_answers_once_then_succeeds(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("ratelimit")
    first = PROBES[key](client, vendor_url(sandbox, key), value)
    assert first.status_code == RATELIMIT_STATUS.get(key, 429), first.text
    if key == "qualys_vmdr":
        assert first.headers["X-RateLimit-ToWait-Sec"] == "1"
        assert "<CODE>1965</CODE>" in first.text
    else:
        assert first.headers["Retry-After"] == "1"
    second = PROBES[key](client, vendor_url(sandbox, key), value)
    assert second.status_code == 200, second.text


@pytest.mark.parametrize("key", VENDORS)
def test_down_marker_is_503(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = PROBES[key](client, vendor_url(sandbox, key), cred("down"))
    assert response.status_code == 503


def test_slow_marker_does_not_answer_within_half_a_second(sandbox: SandboxServer) -> None:
    with httpx.Client(timeout=0.5, trust_env=False) as c, pytest.raises(httpx.ReadTimeout):
        PROBES["tenable_vm"](c, vendor_url(sandbox, "tenable_vm"), cred("slow"))


@pytest.mark.parametrize(
    ("key", "path", "header"),
    [
        ("github_code_scanning", "/user", "Digest abc"),
        ("semgrep", "/deployments", "Token abc"),
        ("jfrog_xray", "/system/version", "Basic abc"),
        ("runzero", "/org", "Token OTabc"),
        ("sonarqube", "/api/issues/search", "Token abc"),
        ("mobsf", "/scans", None),
    ],
)
def test_wrong_auth_scheme_is_401(
    sandbox: SandboxServer, client: httpx.Client, key: str, path: str, header: str | None
) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get(vendor_url(sandbox, key) + path, headers=headers)
    assert response.status_code == 401


def test_burp_refuses_a_scheme_before_its_key(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.post(
        vendor_url(sandbox, "burp_dast") + "/graphql/v1",
        headers={"Authorization": "Bearer " + cred()},
        json={"query": "{ sites { id } }"},
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == "Unauthorized"


def test_runzero_refuses_a_key_without_scope_prefix(sandbox: SandboxServer, client: httpx.Client) -> None:
    response = client.get(vendor_url(sandbox, "runzero") + "/org", headers={"Authorization": "Bearer XX123"})
    assert response.status_code == 401
