"""The OAuth 2.0 client-credentials pieces on their own: credential kinds, the schema, the token cache."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from pmap.connectors.catalog import connector_types
from pmap.connectors.vendors import _atlassian_oauth
from pmap.connectors.vendors._oauth import (
    EXPIRY_MARGIN,
    OAUTH,
    TokenCache,
    cache_key,
    kind_of,
    lifetime,
)
from pmap.core import redaction
from tests.conftest import VirtualClock, canary

OLD_KINDS = {"servicenow": {"username": "pmap.integration", "password": "snPass-0001"},
             "jira_service_management": {"email": "pmap@example.com", "api_token": "ATATT-0001"},
             "checkmarx_one": {"api_key": "cx-refresh-0001"}}


@pytest.mark.parametrize("vendor", sorted(OLD_KINDS))
def test_credentials_stored_with_the_old_fields_still_validate(vendor: str) -> None:
    model = connector_types()[vendor].credentials_model
    creds = model.model_validate(OLD_KINDS[vendor])
    assert kind_of(creds) != OAUTH
    oauth = model.model_validate({"client_id": "pmap-client", "client_secret": "s3cret-0001"})
    assert kind_of(oauth) == OAUTH


@pytest.mark.parametrize("vendor", sorted(OLD_KINDS))
def test_the_error_names_the_fields_and_never_the_value(vendor: str) -> None:
    model = connector_types()[vendor].credentials_model
    secret = canary("kind")
    with pytest.raises(ValidationError) as err:
        model.model_validate({**OLD_KINDS[vendor], "client_id": "pmap-client", "client_secret": secret})
    text = str(err.value)
    assert "not several" in text and "client_id and client_secret" in text and secret not in text
    with pytest.raises(ValidationError) as err:
        model.model_validate({"client_secret": secret})
    assert "client_secret given without client_id" in str(err.value)


@pytest.mark.parametrize("vendor", sorted(OLD_KINDS))
def test_the_schema_describes_exactly_one_kind(vendor: str) -> None:
    from pmap.connectors.base import model_json_schema

    model = connector_types()[vendor].credentials_model
    schema = model_json_schema(model, credentials=True)
    kinds = model.credential_kinds  # type: ignore[attr-defined]
    assert schema["x-credential-kinds"] == {k: list(v) for k, v in kinds.items()}
    assert [set(b["required"]) for b in schema["oneOf"]] == [set(v) for v in kinds.values()]
    for branch, (kind, fields) in zip(schema["oneOf"], kinds.items(), strict=True):
        excluded = {f for alt in branch["not"]["anyOf"] for f in alt["required"]}
        assert excluded == {f for k, fs in kinds.items() if k != kind for f in fs} - set(fields)
    assert schema["properties"]["client_secret"]["writeOnly"] is True
    assert "writeOnly" not in schema["properties"]["client_id"]


def test_cache_key_holds_no_secret_and_changes_with_it() -> None:
    secret = canary("key")
    key = cache_key("https://x.test/oauth_token.do", "client", secret)
    assert secret not in key and "client" in key
    assert key != cache_key("https://x.test/oauth_token.do", "client", secret + "x")
    assert key != cache_key("https://y.test/oauth_token.do", "client", secret)


def test_lifetime_keeps_a_margin() -> None:
    assert lifetime(3600) == 3600 - EXPIRY_MARGIN
    assert lifetime("1799") == 1799 - EXPIRY_MARGIN
    assert lifetime(60) == 30  # a short token: half its life
    assert lifetime(0) == 0 and lifetime(-5) == 0 and lifetime(float("nan")) == 0
    assert lifetime(None) > 0  # no expires_in: a short default


def test_cache_expires_tokens_on_pmaps_clock(virtual_clock: VirtualClock) -> None:
    cache = TokenCache()
    token = canary("token")
    cache.put("k", token, 100)
    assert cache.get("k") == token
    assert token not in redaction.scrub(f"log line {token}")  # registered while cached
    virtual_clock.sleep(99)
    assert cache.get("k") == token
    virtual_clock.sleep(2)
    assert cache.get("k") is None and len(cache) == 0


def test_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = TokenCache(max_entries=3)
    for i in range(5):
        cache.put(f"k{i}", canary(f"t{i}"), 100)
    assert len(cache) == 3 and cache.get("k0") is None and cache.get("k1") is None and cache.get("k4")
    cache.put("none", canary("zero"), 0)
    assert cache.get("none") is None


def test_cache_survives_concurrent_use() -> None:
    cache = TokenCache(max_entries=16)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                cache.put(f"k{(n * 7 + i) % 40}", f"token-{n}-{i}-value", 100)
                cache.get(f"k{i % 40}")
        except BaseException as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(cache) <= 16
    cache.clear()
    assert len(cache) == 0


def test_atlassian_hosts_are_fixed_for_cloud_sites() -> None:
    endpoint = _atlassian_oauth.token_endpoint("https://acme.atlassian.net")
    assert endpoint.url == "https://auth.atlassian.com/oauth/token"
    assert _atlassian_oauth.gateway_base("https://acme.atlassian.net", "abc-123") == \
        "https://api.atlassian.com/ex/jira/abc-123"
    # not an Atlassian-hosted site (the sandbox): the site serves both
    assert _atlassian_oauth.token_endpoint("http://127.0.0.1:1/jsm").url == "http://127.0.0.1:1/jsm/oauth/token"
    assert not _atlassian_oauth.atlassian_hosted("https://atlassian.net.evil.test")
