"""The egress guard's address rules and resolution, without any HTTP."""

from __future__ import annotations

import ipaddress
import socket
import threading

import httpcore
import pytest

from pmap.core.egress import (
    EgressPolicy,
    PinnedBackend,
    check_address,
    parse_destination,
    resolve_and_check,
)
from pmap.core.errors import ConfigurationError, EgressDenied, UpstreamError

DEV = EgressPolicy(production=False)
PROD = EgressPolicy(production=True)
PROD_ALLOW_ALL = EgressPolicy.from_strings(True, "0.0.0.0/0, ::/0")

ALWAYS_REFUSED = [
    "169.254.169.254", "169.254.0.1", "fe80::1", "fe80::1%eth0", "fd00:ec2::254", "100.100.100.200",
    "168.63.129.16", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "ff02::1", "240.0.0.1",  # noqa: S104 - refused
    "255.255.255.255", "::", "::ffff:169.254.169.254", "::ffff:0.0.0.0", "64:ff9b::a9fe:a9fe",
    "2002:a9fe:a9fe::1", "::a9fe:a9fe", "fec0::1", "192.0.0.192", "2001:0:4136:e378:8000:63bf:5601:5601",
]
PRIVATE = [
    "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "172.31.255.254", "192.168.1.1", "fc00::1",
    "fd12:3456::1", "100.64.0.1", "100.127.255.254", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "198.18.0.1",
]
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "172.32.0.1"]


@pytest.mark.parametrize("addr", ALWAYS_REFUSED)
@pytest.mark.parametrize("policy", [DEV, PROD, PROD_ALLOW_ALL], ids=["dev", "prod", "prod-allow-all"])
def test_metadata_link_local_and_reserved_are_always_refused(addr: str, policy: EgressPolicy) -> None:
    assert check_address(ipaddress.ip_address(addr), policy) is not None


@pytest.mark.parametrize("addr", PRIVATE)
def test_private_and_loopback_refused_in_production_only(addr: str) -> None:
    ip = ipaddress.ip_address(addr)
    reason = check_address(ip, PROD)
    assert reason is not None and "PMAP_EGRESS_ALLOW_CIDRS" in reason
    assert check_address(ip, DEV) is None


@pytest.mark.parametrize("addr", PUBLIC)
@pytest.mark.parametrize("policy", [DEV, PROD], ids=["dev", "prod"])
def test_public_addresses_are_allowed(addr: str, policy: EgressPolicy) -> None:
    assert check_address(ipaddress.ip_address(addr), policy) is None


def test_allow_cidrs_open_only_the_listed_ranges_including_mapped_forms() -> None:
    policy = EgressPolicy.from_strings(True, "10.0.0.0/8,fd00:1::/32")
    assert check_address(ipaddress.ip_address("10.1.2.3"), policy) is None
    assert check_address(ipaddress.ip_address("::ffff:10.1.2.3"), policy) is None
    assert check_address(ipaddress.ip_address("fd00:1::5"), policy) is None
    assert check_address(ipaddress.ip_address("192.168.1.1"), policy) is not None
    assert check_address(ipaddress.ip_address("127.0.0.1"), policy) is not None


def test_from_strings_parses_trims_and_rejects_garbage() -> None:
    policy = EgressPolicy.from_strings(True, " 10.0.0.0/8, ,192.168.1.7 ,")
    assert policy.allow_cidrs == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.168.1.7/32"))
    assert EgressPolicy.from_strings(False, None).allow_cidrs == ()
    with pytest.raises(ConfigurationError, match="not-a-cidr"):
        EgressPolicy.from_strings(True, "10.0.0.0/8,not-a-cidr")


def test_ip_literals_are_checked_without_dns(no_network: list[str]) -> None:
    for host in ["169.254.169.254", "[fd00:ec2::254]", "::ffff:169.254.169.254", "0.0.0.0"]:  # noqa: S104 - refused
        with pytest.raises(EgressDenied) as err:
            resolve_and_check(host, 80, DEV)
        assert err.value.step == "egress"
    assert resolve_and_check("[2606:4700:4700::1111]", 443, PROD) == ["2606:4700:4700::1111"]
    assert no_network == []


@pytest.mark.parametrize("host", ["2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518"])
def test_other_encodings_of_the_metadata_address_are_refused(host: str) -> None:
    # the OS resolver reads these numeric forms as 169.254.169.254; the guard checks its answer
    with pytest.raises(EgressDenied, match="169.254.169.254"):
        resolve_and_check(host, 80, DEV)


def test_hostname_is_refused_if_any_answer_is_unsafe(fake_dns) -> None:
    fake_dns.set("mixed.test", ["93.184.216.34", "169.254.169.254"])
    with pytest.raises(EgressDenied, match="mixed.test.*169.254.169.254"):
        resolve_and_check("mixed.test", 443, PROD)


def test_hostname_resolving_to_loopback(fake_dns) -> None:
    fake_dns.set("scanner.internal", ["127.0.0.1"])
    with pytest.raises(EgressDenied, match="loopback"):
        resolve_and_check("scanner.internal", 443, PROD)
    assert resolve_and_check("Scanner.Internal.", 443, DEV) == ["127.0.0.1"]
    allowed = EgressPolicy.from_strings(True, "127.0.0.0/8")
    assert resolve_and_check("scanner.internal", 443, allowed) == ["127.0.0.1"]


def test_unresolvable_name_is_a_dns_step(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*args: object, **kw: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UpstreamError) as err:
        resolve_and_check("nowhere.invalid", 443, DEV)
    assert err.value.step == "dns" and "nowhere.invalid" in err.value.message
    assert not isinstance(err.value, EgressDenied)


def test_a_hanging_resolver_is_cut_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: object, **kw: object) -> object:
        release.wait(10)
        raise socket.gaierror(socket.EAI_AGAIN, "gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    try:
        with pytest.raises(UpstreamError) as err:
            resolve_and_check("slow.test", 443, DEV, timeout=0.2)
        assert err.value.step == "dns" and "did not answer" in err.value.message
    finally:
        release.set()


def test_pinned_backend_never_connects_to_an_unchecked_host(no_network: list[str]) -> None:
    backend = PinnedBackend()
    with pytest.raises(httpcore.ConnectError, match="not checked"):
        backend.connect_tcp("example.com", 443, timeout=1)
    with pytest.raises(httpcore.ConnectError):
        backend.connect_unix_socket("/var/run/docker.sock")
    assert no_network == []


@pytest.mark.parametrize("url", ["storage.example/x?sig=SIGNATURE123", "http://[::1/x?sig=SIGNATURE123",
                                 "http:///x?sig=SIGNATURE123", "http://h:99999/x?sig=SIGNATURE123"])
def test_a_refused_destination_is_not_repeated_in_the_message(url: str) -> None:
    with pytest.raises(EgressDenied) as refused:
        parse_destination(url)
    assert "SIGNATURE123" not in refused.value.message  # a vendor's signed URL carries its signature in the query
