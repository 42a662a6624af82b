"""TLS verification, a per-integration CA bundle, and verification turned off."""

from __future__ import annotations

import pytest

from pmap.core.egress import EgressPolicy
from pmap.core.errors import UpstreamError
from pmap.core.outbound import OutboundClient, OutboundConfig

POLICY = EgressPolicy(production=False)


def test_self_signed_certificate_fails_at_step_tls(tls_server) -> None:
    with (
        OutboundClient(tls_server.url("localhost", "https"), OutboundConfig(policy=POLICY)) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get("/")
    assert err.value.step == "tls"
    assert err.value.message.startswith("TLS certificate verification failed for localhost: self")
    assert "signed certificate" in err.value.message
    assert tls_server.seen == []


def test_ca_bundle_makes_verification_pass(tls_server, tls_material) -> None:
    config = OutboundConfig(policy=POLICY, ca_bundle_pem=tls_material.cert_pem)
    with OutboundClient(tls_server.url("localhost", "https"), config) as client:
        response = client.get("/")
        assert not client.tls_verification_disabled
    assert response.status == 200 and not response.tls_verification_disabled


def test_ca_bundle_still_checks_the_hostname(tls_server, tls_material) -> None:
    config = OutboundConfig(policy=POLICY, ca_bundle_pem=tls_material.cert_pem)
    with (
        OutboundClient(tls_server.url("127.0.0.1", "https"), config) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get("/")
    assert err.value.step == "tls" and "mismatch" in err.value.message.lower()
    assert "host name the certificate was issued for" in err.value.message


def test_verification_off_passes_and_is_flagged(tls_server) -> None:
    config = OutboundConfig(policy=POLICY, verify_tls=False)
    with OutboundClient(tls_server.url("localhost", "https"), config) as client:
        response = client.get("/")
        assert client.tls_verification_disabled
    assert response.status == 200 and response.tls_verification_disabled


def test_unreadable_ca_bundle_is_a_tls_step(tls_server) -> None:
    broken = "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"
    config = OutboundConfig(policy=POLICY, ca_bundle_pem=broken)
    with (
        OutboundClient(tls_server.url("localhost", "https"), config) as client,
        pytest.raises(UpstreamError, match="CA bundle") as err,
    ):
        client.get("/")
    assert err.value.step == "tls"


def test_https_to_a_plain_http_port_is_a_tls_step(server) -> None:
    with (
        OutboundClient(server.url(scheme="https"), OutboundConfig(policy=POLICY)) as client,
        pytest.raises(UpstreamError) as err,
    ):
        client.get("/")
    assert err.value.step == "tls" and "plain HTTP" in err.value.message
