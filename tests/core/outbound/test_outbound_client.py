"""Requests, URL joining, redirects, size cap, error mapping and scrubbing over real loopback HTTP."""

from __future__ import annotations

import html
import json
import socket
from urllib.parse import quote

import pytest

from pmap import __version__
from pmap.core.egress import EgressPolicy
from pmap.core.errors import EgressDenied, UpstreamError
from pmap.core.outbound import OutboundClient, OutboundConfig, target_of

DEV = OutboundConfig(policy=EgressPolicy(production=False))
SECRET = "s3cr3t-Api-Key-0042"


def test_user_agent_path_joining_params_and_json(server) -> None:
    server.routes["/rest/system"] = lambda h: h.reply(200, '{"version": "6.4"}', {"Content-Type": "application/json"})
    with OutboundClient(server.url() + "/rest/", DEV) as client:
        response = client.get("/system", params={"fields": "version"})
        client.get("status")
        client.get("")
    assert response.status == 200 and response.json() == {"version": "6.4"}
    assert response.url == server.url() + "/rest/system?fields=version"
    assert response.elapsed_ms > 0
    assert [s.path for s in server.seen] == ["/rest/system?fields=version", "/rest/status", "/rest"]
    assert all(s.headers["user-agent"] == f"PMAP/{__version__}" for s in server.seen)


def test_any_status_is_returned_unless_expected_says_otherwise(server) -> None:
    server.routes["/missing"] = lambda h: h.reply(404, "no such thing")
    with OutboundClient(server.url(), DEV) as client:
        assert client.get("/missing").status == 404
        assert client.get("/missing", expected=(200, 404)).text() == "no such thing"
        with pytest.raises(UpstreamError) as err:
            client.get("/missing", expected=(200,))
    assert err.value.step == "http" and err.value.upstream_status == 404
    assert "HTTP 404 Not Found to GET /missing: no such thing" in err.value.message


def test_post_sends_json_and_custom_headers(server) -> None:
    with OutboundClient(server.url(), DEV) as client:
        client.post("/scans", json={"name": "x"}, headers={"X-Requested-With": "PMAP"})
    seen = server.seen[0]
    assert seen.method == "POST" and seen.body == b'{"name":"x"}'
    assert seen.headers["x-requested-with"] == "PMAP" and seen.headers["content-type"] == "application/json"


def test_vendor_error_body_is_scrubbed_and_cut(server) -> None:
    body = f'{{"error": "invalid key {SECRET}", "echo": "Authorization: Bearer abc.def"}}' + " pad" * 500
    server.routes["/session"] = lambda h: h.reply(401, body)
    with (
        OutboundClient(server.url(), DEV, secrets=[SECRET]) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get(f"/session?key={SECRET}", expected=(200,))
    message = err.value.message
    assert SECRET not in message and SECRET not in str(err.value) and "abc.def" not in message
    assert "[REDACTED]" in message and err.value.upstream_status == 401
    excerpt = message.split(": ", 1)[1]
    assert len(excerpt) <= 300


def test_a_secret_across_the_cut_leaves_no_part_behind(server) -> None:
    server.routes["/session"] = lambda h: h.reply(401, "x" * 290 + SECRET + " pad" * 100)
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client, pytest.raises(UpstreamError) as err:
        client.get("/session", expected=(200,))
    assert SECRET[:6] not in err.value.message  # scrubbed before the cut, so no prefix of it survives


@pytest.mark.parametrize("form", [
    lambda v: quote(v, safe=""), lambda v: json.dumps(v)[1:-1], lambda v: html.escape(v),
    lambda v: html.escape(v).replace("&#x27;", "&apos;"),
], ids=["url", "json", "html", "xml-apos"])
def test_an_echo_in_any_escaped_form_is_scrubbed(server, form) -> None:
    secret = "k3y'&<\"/+= %-0042"
    server.routes["/session"] = lambda h: h.reply(401, f"invalid credential {form(secret)}")
    with OutboundClient(server.url(), DEV, secrets=[secret]) as client, pytest.raises(UpstreamError) as err:
        client.get("/session", expected=(200,))
    assert "k3y" not in err.value.message and "[REDACTED]" in err.value.message


def test_invalid_json_is_a_response_step_and_scrubbed(server) -> None:
    server.routes["/html"] = lambda h: h.reply(200, f"<html>login {SECRET}</html>", {"Content-Type": "text/html"})
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client:
        response = client.get("/html")
    with pytest.raises(UpstreamError) as err:
        response.json()
    assert err.value.step == "response" and "text/html" in err.value.message
    assert SECRET not in err.value.message


def test_text_uses_the_declared_charset(server) -> None:
    server.routes["/latin"] = lambda h: h.reply(200, "café".encode("latin-1"),
                                                {"Content-Type": "text/plain; charset=latin-1"})
    with OutboundClient(server.url(), DEV) as client:
        assert client.get("/latin").text() == "café"


def test_same_host_redirects_are_followed(server) -> None:
    server.routes["/old"] = lambda h: h.reply(302, "", {"Location": "/new?x=1"})
    with OutboundClient(server.url(), DEV) as client:
        response = client.get("/old")
    assert response.status == 200 and response.url.endswith("/new?x=1")
    assert [s.path for s in server.seen] == ["/old", "/new?x=1"]


def test_post_303_continues_as_get(server) -> None:
    server.routes["/submit"] = lambda h: h.reply(303, "", {"Location": "/result"})
    with OutboundClient(server.url(), DEV) as client:
        client.post("/submit", json={"a": 1})
    assert [(s.method, s.path) for s in server.seen] == [("POST", "/submit"), ("GET", "/result")]
    assert server.seen[1].body == b""


def test_cross_host_redirect_is_refused_and_named(server, fake_dns) -> None:
    server.routes["/login"] = lambda h: h.reply(301, "", {"Location": "https://sso.other.example/auth"})
    with OutboundClient(server.url(), DEV) as client, pytest.raises(UpstreamError) as err:
        client.get("/login")
    assert err.value.step == "http" and err.value.upstream_status == 301
    assert "sso.other.example" in err.value.message and "not followed" in err.value.message
    assert "sso.other.example" not in fake_dns.calls
    assert len(server.seen) == 1


def test_a_signed_redirect_to_another_host_is_followed_without_the_request_credentials(server, fake_dns) -> None:
    fake_dns.set("storage.example", ["127.0.0.1"])
    server.routes["/artifacts/1/zip"] = lambda h: h.reply(
        302, "", {"Location": f"http://storage.example:{server.port}/blob/1.zip?sig=abc"})
    server.routes["/blob/1.zip"] = lambda h: h.reply(200, b"PK-zip", {"Content-Type": "application/zip"})
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client:
        response = client.get("/artifacts/1/zip", headers={"X-Api-Key": SECRET}, auth=("user", SECRET),
                              params={"key": SECRET}, signed_redirects=True)
    assert response.status == 200 and response.content == b"PK-zip"
    api, storage = server.seen
    assert api.headers["authorization"].startswith("Basic ") and api.headers["x-api-key"] == SECRET
    assert storage.path == "/blob/1.zip?sig=abc"
    assert storage.headers["host"] == f"storage.example:{server.port}"
    assert "authorization" not in storage.headers and "x-api-key" not in storage.headers
    assert SECRET not in repr(storage.headers)
    server.routes["/artifacts/2/zip"] = lambda h: h.reply(
        307, "", {"Location": f"http://storage.example:{server.port}/blob/1.zip?sig=abc"})
    with OutboundClient(server.url(), DEV, secrets=[SECRET]) as client:
        client.post("/artifacts/2/zip", json={"token": SECRET}, signed_redirects=True)
    assert (server.seen[-1].method, server.seen[-1].body) == ("GET", b"")  # a 307 keeps neither body nor POST


def test_a_signed_redirect_is_never_a_downgrade_nor_a_way_past_the_egress_guard(tls_server, tls_material,
                                                                                server) -> None:
    tls_server.routes["/dl"] = lambda h: h.reply(302, "", {"Location": f"http://127.0.0.1:{server.port}/blob"})
    config = OutboundConfig(policy=EgressPolicy(production=False), ca_bundle_pem=tls_material.cert_pem)
    with (
        OutboundClient(tls_server.url("localhost", "https"), config) as client,
        pytest.raises(UpstreamError, match="no downgrade") as err,
    ):
        client.get("/dl", signed_redirects=True)
    assert err.value.step == "http" and server.seen == []
    server.routes["/dl"] = lambda h: h.reply(302, "", {"Location": "http://169.254.169.254/latest/meta-data/"})
    with OutboundClient(server.url(), DEV) as client, pytest.raises(EgressDenied):
        client.get("/dl", signed_redirects=True)


@pytest.mark.parametrize("location", ["https:x", "http:\\\\127.0.0.2:8951/x"])
def test_a_malformed_redirect_location_fails_at_http_not_as_a_fault(server, location: str) -> None:
    server.routes["/server/properties"] = lambda h: h.reply(302, "", {"Location": location})
    with OutboundClient(server.url(), DEV) as client, pytest.raises(UpstreamError) as err:
        client.get("/server/properties")
    assert err.value.step == "http" and "malformed URL" in err.value.message
    assert err.value.status == 502  # a vendor answering wrongly is a gateway error, not a refusal (422)


def test_redirect_to_another_port_or_a_downgrade_is_refused(server, tls_server, tls_material) -> None:
    server.routes["/a"] = lambda h: h.reply(307, "", {"Location": "http://127.0.0.1:1/admin"})
    with (
        OutboundClient(server.url(), DEV) as client,
        pytest.raises(UpstreamError, match="not followed"),
    ):
        client.get("/a")
    tls_server.routes["/b"] = lambda h: h.reply(307, "", {"Location": f"http://localhost:{tls_server.port}/b"})
    config = OutboundConfig(policy=EgressPolicy(production=False), ca_bundle_pem=tls_material.cert_pem)
    with (
        OutboundClient(tls_server.url("localhost", "https"), config) as client,
        pytest.raises(UpstreamError, match="not followed"),
    ):
        client.get("/b")  # same host and port, but https to http
    assert len(tls_server.seen) == 1


def test_redirect_loops_stop_after_three_hops(server) -> None:
    server.routes["/loop"] = lambda h: h.reply(302, "", {"Location": "/loop"})
    with (
        OutboundClient(server.url(), DEV) as client,
        pytest.raises(UpstreamError, match="more than 3") as err,
    ):
        client.get("/loop")
    assert err.value.step == "http" and len(server.seen) == 4


def _chunked(h, size: int) -> None:
    h.send_response(200)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    block = b"x" * 1024
    for _ in range(size // 1024):
        h.wfile.write(b"400\r\n" + block + b"\r\n")
    h.wfile.write(b"0\r\n\r\n")


def test_body_size_is_capped_with_or_without_content_length(server) -> None:
    server.routes["/big"] = lambda h: h.reply(200, b"y" * 4096)
    server.routes["/stream"] = lambda h: _chunked(h, 8192)
    with OutboundClient(server.url(), DEV) as client:
        for path in ("/big", "/stream"):
            with pytest.raises(UpstreamError, match="larger than 2048 bytes") as err:
                client.get(path, max_bytes=2048)
            assert err.value.step == "response"
        assert len(client.get("/stream").content) == 8192
    config = OutboundConfig(policy=DEV.policy, max_body_bytes=1000)
    with (
        OutboundClient(server.url(), config) as client,
        pytest.raises(UpstreamError, match="larger than 1000"),
    ):
        client.get("/big")


def test_refused_connection_is_a_connect_step() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    with (
        OutboundClient(f"http://127.0.0.1:{port}", DEV) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get("/")
    assert err.value.step == "connect" and f"127.0.0.1:{port}" in err.value.message
    assert "refused" in err.value.message.lower()


def test_plain_http_to_a_tls_port_hints_at_https(tls_server) -> None:
    with OutboundClient(tls_server.url(), DEV) as client, pytest.raises(UpstreamError) as err:
        client.get("/")
    assert err.value.step in {"http", "connect"} and "try https://" in err.value.message


def test_closed_client_cannot_be_used(server) -> None:
    client = OutboundClient(server.url(), DEV)
    client.get("/")
    client.close()
    client.close()
    with pytest.raises(RuntimeError):
        client.get("/")


def test_plain_http_flag() -> None:
    assert OutboundClient("http://scanner.example.com", DEV).plain_http
    assert not OutboundClient("https://scanner.example.com", DEV).plain_http


@pytest.mark.parametrize(("url", "expected"), [
    ("https://Scanner.Example.COM/rest/", ("https", "scanner.example.com", 443, "/rest")),
    ("https://scanner.example.com:443/rest", ("https", "scanner.example.com", 443, "/rest")),
    ("http://scanner.example.com./", ("http", "scanner.example.com", 80, "")),
    ("HTTP://[::1]:8834/api?x=1#f", ("http", "::1", 8834, "/api")),
    ("https://bücher.example/x/", ("https", "xn--bcher-kva.example", 443, "/x")),
])
def test_target_of_normalizes(url: str, expected: tuple[str, str, int, str]) -> None:
    assert target_of(url) == expected


def test_target_of_refuses_non_http() -> None:
    with pytest.raises(EgressDenied):
        target_of("ftp://example.com/")


def test_head_is_not_refused_for_its_declared_length(server) -> None:
    server.routes["/big"] = lambda h: h.reply(200, b"y" * 4096)
    with OutboundClient(server.url(), DEV) as client:
        response = client.request("HEAD", "/big", max_bytes=2048)
    assert response.status == 200 and response.content == b""
    assert response.headers["content-length"] == "4096"


def test_basic_auth_is_sent_and_kept_on_same_host_redirects(server) -> None:
    server.routes["/old"] = lambda h: h.reply(301, "", {"Location": "/new"})
    with OutboundClient(server.url(), DEV) as client:
        client.get("/old", auth=("user", "pass-word"))
    assert [s.headers.get("authorization", "")[:6] for s in server.seen] == ["Basic ", "Basic "]
