"""A vendor that echoes the request's auth headers, whole or base64-encoded: the values the client built
from the credentials are masked in its errors and in the log for as long as the operation runs."""

from __future__ import annotations

import base64

import pytest

from pmap.core import redaction
from pmap.core.egress import EgressPolicy
from pmap.core.errors import UpstreamError
from pmap.core.outbound import OutboundClient, OutboundConfig

DEV = OutboundConfig(policy=EgressPolicy(production=False))
USER, SECRET = "pmap-bot@example.com", "s3cr3t-Api-Token-0042"


def _b64(text: str, urlsafe: bool = False) -> str:
    encode = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return encode(text.encode()).decode()


def _echo_auth(h) -> None:
    sent = h.headers.get("Authorization", "")
    body = (f"denied {_b64(sent)} | {_b64('Authorization: ' + sent, urlsafe=True).rstrip('=')} | "
            f"{_b64('GET / HTTP/1.1 Authorization: ' + sent)} | raw {sent} | key {h.headers.get('X-ApiKeys', '')}")
    h.reply(401, body)


def forms(header: str) -> list[str]:
    """The header value and its encodings an echo may carry (the basic credential alone too)."""
    credential = header.split(" ", 1)[1]
    return [header, credential, _b64(header), _b64(header).rstrip("="), _b64("Authorization: " + header),
            _b64("Authorization: " + header, urlsafe=True).rstrip("="), SECRET]


@pytest.mark.parametrize("scheme", ["basic", "bearer"])
def test_an_echo_of_the_authorization_header_in_base64_is_masked(server, scheme: str) -> None:
    server.default = _echo_auth
    header = f"Basic {_b64(f'{USER}:{SECRET}')}" if scheme == "basic" else f"Bearer {SECRET}"
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client, pytest.raises(UpstreamError) as err:
        client.get("/rest/api/3/myself", headers={"Authorization": header, "X-ApiKeys": f"secretKey={SECRET}"},
                   expected=(200,))
    assert server.seen and err.value.message.startswith("127.0.0.1 answered HTTP 401")
    for value in forms(header):
        assert value not in err.value.message, value


def test_auth_headers_httpx_builds_are_masked_in_logs_while_the_client_is_open(server) -> None:
    server.default = _echo_auth
    header = f"Basic {_b64(f'{USER}:{SECRET}')}"
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client:
        echoed = client.get("/x", auth=(USER, SECRET)).text()  # httpx builds this header itself
        assert _b64(header) in echoed
        # a log line of any thread is scrubbed by the redactor: the header and its encodings are masked
        scrubbed = redaction.scrub(f"vendor said {echoed}")
        assert all(value not in scrubbed for value in forms(header)), scrubbed
        assert any(header in group for group in redaction._in_use.values())
    assert not any(header in group for group in redaction._in_use.values())  # released with the client


def test_masked_forms_are_kept_only_while_the_value_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    value = "CANARY-forms-" + base64.b16encode(b"\x01\x02\x03\x04\x05").decode()
    handle = redaction.register([value])
    scrubbed = redaction.scrub(f"x {_b64('Bearer ' + value)} y")  # only "Bearer " stays readable
    assert scrubbed.startswith(f"x {_b64('Bearer ')[:8]}") and scrubbed.endswith(f"{redaction.REDACTED} y")
    assert value in redaction._forms  # computed once per value, not on every log line
    monkeypatch.setattr(redaction, "LINGER_SECONDS", -1.0)  # released values stop being masked at once
    redaction.unregister(handle)
    redaction.active_values()
    assert value not in redaction._forms and value not in redaction._recent
    assert redaction.scrub(value) == value
