"""The client enforces the egress guard before any packet, and connects only to checked addresses."""

from __future__ import annotations

import pytest

from pmap.core.egress import EgressPolicy
from pmap.core.errors import EgressDenied
from pmap.core.outbound import OutboundClient, OutboundConfig

DEV = OutboundConfig(policy=EgressPolicy(production=False))
PROD = OutboundConfig(policy=EgressPolicy(production=True))


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::ffff:a9fe:a9fe]/",
    "http://0.0.0.0:8080/",
    "https://100.100.100.200/",
    "http://[fe80::1%25eth0]/",
])
@pytest.mark.parametrize("config", [DEV, PROD], ids=["dev", "prod"])
def test_metadata_addresses_are_refused_before_any_packet(url: str, config: OutboundConfig,
                                                          no_network: list[str]) -> None:
    with OutboundClient(url, config) as client, pytest.raises(EgressDenied) as err:
        client.get("/")
    assert err.value.step == "egress" and "Refusing to connect" in err.value.message
    assert no_network == []


def test_construction_does_no_io(no_network: list[str]) -> None:
    client = OutboundClient("https://scanner.example.com:8834/api", DEV, secrets=["k" * 12])
    assert client.retries_done == 0 and not client.plain_http and not client.tls_verification_disabled
    client.close()
    assert no_network == []


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "gopher://h/", "example.com/api",
                                 "https://user:pw@example.com/", "http:///nohost"])
def test_only_http_and_https_urls_with_a_host_are_accepted(url: str) -> None:
    with pytest.raises(EgressDenied):
        OutboundClient(url, DEV)


def test_hostname_resolving_to_loopback_is_refused_in_production(server, fake_dns) -> None:
    fake_dns.set("scanner.internal", ["127.0.0.1"])
    with (
        OutboundClient(server.url("scanner.internal"), PROD) as client,
        pytest.raises(EgressDenied, match="scanner.internal.*127.0.0.1"),
    ):
        client.get("/")
    assert server.seen == []


def test_loopback_allowed_in_production_via_allow_cidrs(server, fake_dns) -> None:
    fake_dns.set("scanner.internal", ["127.0.0.1"])
    config = OutboundConfig(policy=EgressPolicy.from_strings(True, "10.0.0.0/8, 127.0.0.0/8"))
    with OutboundClient(server.url("scanner.internal"), config) as client:
        assert client.get("/").status == 200
    assert server.seen[0].headers["host"] == f"scanner.internal:{server.port}"


def test_loopback_allowed_in_development(server, fake_dns) -> None:
    fake_dns.set("scanner.internal", ["127.0.0.1"])
    with OutboundClient(server.url("scanner.internal"), DEV) as client:
        assert client.get("/").status == 200


def test_dns_rebinding_cannot_redirect_the_connection(server, fake_dns, connects) -> None:
    # first answer is safe, every later answer points at the metadata service
    fake_dns.set("rebind.test", ["127.0.0.1"], ["169.254.169.254"])
    with OutboundClient(server.url("rebind.test"), DEV) as client:
        assert client.get("/one").status == 200
        assert client.get("/two", headers={"Connection": "close"}).status == 200
        assert client.get("/three").status == 200  # a fresh connection after the close
    assert fake_dns.calls.count("rebind.test") == 1
    assert connects and all(addr == ("127.0.0.1", server.port) for addr in connects)
    assert len(connects) == 2
    assert [s.headers["host"] for s in server.seen] == [f"rebind.test:{server.port}"] * 3
    # a new operation resolves again and gets the metadata answer: refused, nothing sent
    with (
        OutboundClient(server.url("rebind.test"), DEV) as client,
        pytest.raises(EgressDenied, match="169.254.169.254"),
    ):
        client.get("/four")
    assert len(server.seen) == 3 and len(connects) == 2


def test_fallback_to_the_next_checked_address(server, fake_dns, connects) -> None:
    # ::1 is checked but nothing listens there on this port; the second checked address works
    fake_dns.set("dual.test", ["::1", "127.0.0.1"])
    with OutboundClient(server.url("dual.test"), DEV) as client:
        assert client.get("/").status == 200
    assert [a[0] for a in connects] == ["::1", "127.0.0.1"]


def test_absolute_urls_must_stay_on_the_base_origin(server, fake_dns) -> None:
    with OutboundClient(server.url() + "/rest", DEV) as client:
        assert client.get(server.url() + "/other").status == 200
        with pytest.raises(EgressDenied, match="must stay on 127.0.0.1"):
            client.get(server.url("localhost") + "/token")
        with pytest.raises(EgressDenied, match="must stay on 127.0.0.1"):
            client.get("http://127.0.0.1:1/token")  # the base host on another port
        with pytest.raises(EgressDenied):
            client.get("http://169.254.169.254/latest/", allow_host="localhost")
        response = client.post(server.url("localhost") + "/token", allow_host="LocalHost", data={"a": "b"})
    assert response.status == 200
    assert [s.path for s in server.seen] == ["/other", "/token"]
    assert server.seen[1].headers["host"] == f"localhost:{server.port}"
    with OutboundClient("https://127.0.0.1:1", DEV) as client, pytest.raises(EgressDenied, match="downgrade"):
        client.get(server.url("localhost") + "/token", allow_host="localhost")  # allow_host is no way to http
    assert len(server.seen) == 2
