"""A vendor that echoes a base64 copy of the whole ``Authorization`` header PMAP sent: neither the
header, nor its base64, nor the credential reaches the test result, the API response or a log line."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from tests.conftest import Api, canary
from tests.core.outbound import conftest as loopback


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _echo(h) -> None:
    sent = h.headers.get("Authorization", "")
    h.server.headers_sent.append(sent)
    body = ('{"errorMessages": ["Unauthorized: ' + _b64(sent) + '"], "message": "you sent '
            + _b64("Authorization: " + sent) + '"}')
    h.reply(401, body, {"Content-Type": "application/json"})


@pytest.fixture
def echoing_vendor() -> Iterator[loopback.TestServer]:
    """A vendor answering every call 401 with the base64 of the Authorization header it received."""
    server = loopback.TestServer()
    server.headers_sent = []  # type: ignore[attr-defined]
    server.default = _echo
    yield from loopback._serve(server)


@pytest.mark.parametrize(("vendor", "credentials"), [
    ("jira_cloud", {"email": "pmap-bot@example.com", "api_token": "token"}),
    ("github_issues", {"token": "token"}),
    ("azure_boards", {"personal_access_token": "pat"}),
])
def test_an_echoed_base64_authorization_header_appears_nowhere(api: Api, echoing_vendor: loopback.TestServer,
                                                               capfd: pytest.CaptureFixture[str], vendor: str,
                                                               credentials: dict[str, str]) -> None:
    creds = {k: (v if "@" in v else canary(v)) for k, v in credentials.items()}
    r = api.client.post("/api/v1/integrations/test", headers=api.token(), json={
        "vendor": vendor, "connection": {"base_url": echoing_vendor.url() + "/api"}, "credentials": creds})
    assert r.status_code == 200 and r.json()["failed_step"] == "auth", r.text
    logs = capfd.readouterr()
    assert f"connection test of {vendor} failed at auth" in logs.err  # the failure was logged, scrubbed
    sent = echoing_vendor.headers_sent  # type: ignore[attr-defined]
    assert sent and all(sent)
    hunted = [*(v for k, v in creds.items() if k != "email")]
    for header in sent:
        hunted += [header, header.split(" ", 1)[1], _b64(header), _b64(header).rstrip("="),
                   _b64("Authorization: " + header), _b64("Authorization: " + header).rstrip("=")]
    everything = r.text + logs.out + logs.err
    for value in hunted:
        assert value not in everything, value
