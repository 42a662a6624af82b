"""Every work-tool vendor honours the scenario markers, over real HTTP, in its own error shape."""

from __future__ import annotations

import httpx
import pytest

from pmap_sandbox.server import SandboxServer, build_app
from pmap_sandbox.work import SANDBOX_VENDORS, build_routers

from .conftest import bearer, cred, vendor_url
from .probes import MISSING_STATUS, PATHS, PROBES, is_vendor_error

VENDORS = sorted(PROBES)


def test_every_vendor_has_a_probe_and_a_descriptor() -> None:
    assert set(PROBES) == set(SANDBOX_VENDORS)
    for key, descriptor in SANDBOX_VENDORS.items():
        assert descriptor["base_path"].startswith(f"/{key}")
        assert descriptor["valid_credentials"], key


@pytest.mark.parametrize("key", VENDORS)
def test_documented_credentials_authenticate(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    secret = next(v for f, v in SANDBOX_VENDORS[key]["valid_credentials"].items()
                  if f not in ("email", "username"))
    response = PROBES[key](client, vendor_url(sandbox, key), secret)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("key", VENDORS)
def test_missing_credential_is_refused(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = PROBES[key](client, vendor_url(sandbox, key), None)
    assert response.status_code == MISSING_STATUS.get(key, 401), response.text
    assert is_vendor_error(key, response)


@pytest.mark.parametrize("key", VENDORS)
def test_wrong_auth_scheme_is_refused(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    headers = {"Authorization": f"Digest {cred()}", "X-TFS-FedAuthRedirect": "Suppress"}
    response = client.get(vendor_url(sandbox, key) + PATHS[key], headers=headers)
    assert response.status_code == 401, response.text
    assert is_vendor_error(key, response)


@pytest.mark.parametrize("key", VENDORS)
def test_bad_marker_gets_the_vendor_refusal(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("bad")
    response = PROBES[key](client, vendor_url(sandbox, key), value)
    assert response.status_code == 401, response.text
    assert is_vendor_error(key, response)
    assert value not in response.text


@pytest.mark.parametrize("key", VENDORS)
def test_echo_marker_repeats_credential_and_header(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("echo")
    response = PROBES[key](client, vendor_url(sandbox, key), value)
    assert response.status_code == 401
    assert value in response.text
    assert "Authorization: " in response.text or key.startswith("gitlab")  # GitLab's token is not in Authorization


@pytest.mark.parametrize("key", VENDORS)
def test_ratelimit_answers_once_then_succeeds(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    value = cred("ratelimit")
    first = PROBES[key](client, vendor_url(sandbox, key), value)
    assert first.status_code == 429, first.text
    assert first.headers["Retry-After"] == "1"
    assert is_vendor_error(key, first)
    second = PROBES[key](client, vendor_url(sandbox, key), value)
    assert second.status_code == 200, second.text


@pytest.mark.parametrize("key", VENDORS)
def test_down_marker_answers_503(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = PROBES[key](client, vendor_url(sandbox, key), cred("down"))
    assert response.status_code == 503
    assert is_vendor_error(key, response)


@pytest.mark.parametrize("key", VENDORS)
def test_unknown_path_answers_the_vendor_404(sandbox: SandboxServer, client: httpx.Client, key: str) -> None:
    response = client.get(vendor_url(sandbox, key) + "/no/such/resource/here")
    # ServiceNow answers an unknown REST URI with 400 "Requested URI does not represent any resource"
    assert response.status_code == (400 if key == "servicenow" else 404)
    assert not response.text.startswith("{\"detail\"")  # never FastAPI's own 404 body


def test_slow_marker_does_not_answer_within_half_a_second(sandbox: SandboxServer) -> None:
    with httpx.Client(timeout=0.5, trust_env=False) as impatient, pytest.raises(httpx.ReadTimeout):
        PROBES["jira_cloud"](impatient, vendor_url(sandbox, "jira_cloud"), cred("slow"))


def test_reset_forgets_work_tool_state() -> None:
    # a private server (resetting the shared one would disturb other tests), and a client closed
    # before it stops, so no idle keep-alive connection delays the shutdown
    with SandboxServer(build_app(build_routers(), SANDBOX_VENDORS)) as own, \
            httpx.Client(timeout=10.0, trust_env=False) as client:
        issues = own.base_url + "/github_issues/repos/acme/webapp/issues"
        number = client.post(issues, headers=bearer(cred()), json={"title": "t"}).json()["number"]
        assert client.get(f"{issues}/{number}", headers=bearer(cred())).status_code == 200
        assert client.post(own.base_url + "/_sandbox/reset").status_code == 200
        assert client.get(f"{issues}/{number}", headers=bearer(cred())).status_code == 404
