"""Inbound webhook verification: every scheme accepts what its vendor signs and nothing else."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import time
from collections.abc import Iterator, Mapping

import orjson
import pytest

from pmap.webhooks.schemes import (
    SCHEMES,
    TOLERANCE_SECONDS,
    Verdict,
    WebhookScheme,
    body_id,
)

BODY = b'{"id":"evt-123","action":"opened","issue":{"number":7,"title":"caf\xc3\xa9"}}'
NOW = 1_750_000_000.0
DELIVERY = "5f0c6a2e-0d4c-4d1e-9c1a-3b2a1c0d9e8f"

ALL = sorted(SCHEMES)
TIMESTAMPED = ["servicenow", "standard_webhooks"]
UNSIGNED_BODY = ["azure_devops_basic", "gitlab_token"]  # a static credential: the body is not covered
BODY_BOUND = [k for k in ALL if k not in UNSIGNED_BODY]
PROOF_HEADER = {
    "github": "X-Hub-Signature-256", "gitlab_token": "X-Gitlab-Token", "jira": "X-Hub-Signature",
    "bitbucket": "X-Hub-Signature", "azure_devops_basic": "Authorization", "sonarqube": "X-Sonar-Webhook-HMAC-SHA256",
    "snyk": "X-Hub-Signature", "servicenow": "X-PMAP-Signature", "standard_webhooks": "webhook-signature",
}


class MultiHeaders(Mapping[str, str]):
    """Like Starlette's Headers: ``items()`` yields every header line, repeats included."""

    def __init__(self, lines: list[tuple[str, str]]) -> None:
        self.lines = lines

    def __getitem__(self, key: str) -> str:
        return next(v for k, v in self.lines if k.lower() == key.lower())

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self.lines)

    def __len__(self) -> int:
        return len(self.lines)

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self.lines)


def signed(key: str, secret: str, body: bytes = BODY, ts: int = int(NOW)) -> tuple[WebhookScheme, dict[str, str]]:
    scheme = SCHEMES[key]
    return scheme, scheme.sign(body, secret, delivery_id=DELIVERY, timestamp=ts)


def test_registry_holds_exactly_the_documented_schemes() -> None:
    assert set(SCHEMES) == set(PROOF_HEADER)
    assert all(SCHEMES[k].key == k for k in SCHEMES)


@pytest.mark.parametrize("key", ALL)
def test_valid_delivery_is_accepted(key: str) -> None:
    scheme = SCHEMES[key]
    secret = scheme.generate_secret()
    _, headers = signed(key, secret)
    verdict = scheme.verify(headers, BODY, [secret], NOW)
    assert verdict.ok, verdict.reason
    assert verdict.reason == "ok"
    assert verdict.secret_index == 0
    expected_id = {"sonarqube": body_id(BODY), "azure_devops_basic": "evt-123"}.get(key, DELIVERY)
    assert verdict.delivery_id == expected_id
    assert verdict.timestamp == (int(NOW) if key in TIMESTAMPED else None)


@pytest.mark.parametrize("key", BODY_BOUND)
def test_tampered_body_is_rejected(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    for tampered in (BODY + b" ", BODY.replace(b"opened", b"closed"), b"", BODY[:-1]):
        verdict = scheme.verify(headers, tampered, [secret], NOW)
        assert not verdict.ok and verdict.reason == "signature mismatch"
        assert verdict.delivery_id is None and verdict.secret_index is None


@pytest.mark.parametrize("key", UNSIGNED_BODY)
def test_static_credential_schemes_cannot_detect_a_changed_body(key: str) -> None:
    # documented limitation of GitLab token mode and Azure Basic: only TLS protects the body
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    assert scheme.verify(headers, BODY + b" ", [secret], NOW).ok


@pytest.mark.parametrize("key", ALL)
def test_wrong_secret_is_rejected(key: str) -> None:
    scheme, headers = signed(key, SCHEMES[key].generate_secret())
    verdict = scheme.verify(headers, BODY, [SCHEMES[key].generate_secret()], NOW)
    assert not verdict.ok
    assert verdict.reason in ("signature mismatch", "token mismatch", "credentials mismatch")


@pytest.mark.parametrize("key", ALL)
def test_the_proof_is_compared_in_constant_time(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the verdict rests on hmac.compare_digest (no ==): rigged to answer "equal", a wrong proof passes
    scheme, headers = signed(key, SCHEMES[key].generate_secret())
    configured = [SCHEMES[key].generate_secret()]
    assert not scheme.verify(headers, BODY, configured, NOW).ok
    monkeypatch.setattr(hmac, "compare_digest", lambda _a, _b: True)
    assert scheme.verify(headers, BODY, configured, NOW).ok


@pytest.mark.parametrize("key", ALL)
def test_missing_proof_is_rejected(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    del headers[PROOF_HEADER[key]]
    verdict = scheme.verify(headers, BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason.startswith("missing")
    assert not scheme.verify({}, BODY, [secret], NOW).ok


@pytest.mark.parametrize("key", ALL)
@pytest.mark.parametrize("configured", [[], [""], ["", "   "]])
def test_empty_configured_secret_is_rejected(key: str, configured: list[str]) -> None:
    scheme = SCHEMES[key]
    # a sender using the same empty secret must not pass either: an empty HMAC key is forgeable
    headers: dict[str, str] = {}
    with contextlib.suppress(ValueError):  # Standard Webhooks refuses to sign with an empty key
        headers = scheme.sign(BODY, "", delivery_id=DELIVERY, timestamp=int(NOW))
    verdict = scheme.verify(headers, BODY, configured, NOW)
    assert not verdict.ok and verdict.reason == "no secret configured"


@pytest.mark.parametrize("key", ALL)
def test_bare_string_instead_of_a_secret_list_is_rejected(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    verdict = scheme.verify(headers, BODY, secret, NOW)
    assert not verdict.ok


@pytest.mark.parametrize("key", ALL)
def test_previous_secret_is_accepted_during_rotation(key: str) -> None:
    scheme = SCHEMES[key]
    old, new = scheme.generate_secret(), scheme.generate_secret()
    _, headers = signed(key, old)
    verdict = scheme.verify(headers, BODY, [new, "", old], NOW)
    assert verdict.ok and verdict.secret_index == 2
    assert not scheme.verify(headers, BODY, [new], NOW).ok


@pytest.mark.parametrize("key", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-(TOLERANCE_SECONDS + 1), TOLERANCE_SECONDS + 1, -86_400, 10 * 365 * 86_400])
def test_timestamp_outside_tolerance_is_rejected(key: str, skew: int) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret, ts=int(NOW) + skew)
    verdict = scheme.verify(headers, BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason == "timestamp outside tolerance"


@pytest.mark.parametrize("key", TIMESTAMPED)
@pytest.mark.parametrize("skew", [-(TOLERANCE_SECONDS - 1), 0, TOLERANCE_SECONDS - 1])
def test_timestamp_inside_tolerance_is_accepted(key: str, skew: int) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret, ts=int(NOW) + skew)
    assert scheme.verify(headers, BODY, [secret], NOW).ok


@pytest.mark.parametrize("key", TIMESTAMPED)
@pytest.mark.parametrize("bad", ["-5", "17e8", "", "１７５０００００００", "99999999999999999999"])
def test_malformed_timestamp_is_rejected(key: str, bad: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    name = "X-PMAP-Timestamp" if key == "servicenow" else "webhook-timestamp"
    headers[name] = bad
    assert not scheme.verify(headers, BODY, [secret], NOW).ok


@pytest.mark.parametrize("key", ALL)
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_header_names_are_case_insensitive(key: str, case: object) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    recased = {case(k): v for k, v in headers.items()}  # type: ignore[operator]
    assert scheme.verify(recased, BODY, [secret], NOW).ok


@pytest.mark.parametrize("key", ALL)
def test_a_proof_header_given_twice_with_different_values_is_rejected(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    lines = list(headers.items()) + [(PROOF_HEADER[key].lower(), "sha256=" + "0" * 64)]
    verdict = scheme.verify(MultiHeaders(lines), BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason.startswith("duplicate")
    assert scheme.verify(MultiHeaders(list(headers.items()) * 2), BODY, [secret], NOW).ok  # identical repeats


def test_github_sha1_signature_alone_is_rejected() -> None:
    secret = "It's a Secret to Everybody"
    sha1 = "sha1=" + hmac.new(secret.encode(), BODY, hashlib.sha1).hexdigest()
    github = SCHEMES["github"]
    verdict = github.verify({"X-Hub-Signature": sha1, "X-GitHub-Delivery": DELIVERY}, BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason == "sha1 signature not accepted"
    verdict = github.verify({"X-Hub-Signature-256": sha1}, BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason == "sha1 signature not accepted"


def test_github_documented_example_verifies() -> None:
    # GitHub's docs: secret "It's a Secret to Everybody", payload "Hello, World!"
    headers = {"X-Hub-Signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"}
    verdict = SCHEMES["github"].verify(headers, b"Hello, World!", ["It's a Secret to Everybody"], NOW)
    assert verdict.ok and verdict.delivery_id == body_id(b"Hello, World!")


def test_standard_webhooks_reference_vector_verifies() -> None:
    headers = {"webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek", "webhook-timestamp": "1614265330",
               "webhook-signature": "v1a,ignored v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="}
    verdict = SCHEMES["standard_webhooks"].verify(
        headers, b'{"test": 2432232314}', ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], 1614265330 + 10
    )
    assert verdict.ok and verdict.delivery_id == "msg_p5jXN8AQM9LWM0D4loKWxJek" and verdict.timestamp == 1614265330


@pytest.mark.parametrize(
    ("key", "value"),
    [("github", "sha256=zz" + "0" * 62), ("github", "sha256=" + "0" * 63), ("github", "0" * 64),
     ("jira", "md5=" + "0" * 32), ("sonarqube", "sha256=" + "0" * 64), ("servicenow", "v2=abc"),
     ("servicenow", "v1=!!!"), ("standard_webhooks", "v1,@@@"), ("standard_webhooks", "v2,AAAA")],
)
def test_malformed_signature_is_rejected(key: str, value: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    headers[PROOF_HEADER[key]] = value
    verdict = scheme.verify(headers, BODY, [secret], NOW)
    assert not verdict.ok and verdict.reason != "ok"


def test_generated_secrets_follow_each_vendor_format() -> None:
    std = SCHEMES["standard_webhooks"].generate_secret()
    assert std.startswith("whsec_") and 24 <= len(base64.b64decode(std[6:], validate=True)) <= 64
    assert len(SCHEMES["sonarqube"].generate_secret()) >= 16
    assert 20 <= len(SCHEMES["gitlab_token"].generate_secret()) <= 255
    for key in ALL:
        a, b = SCHEMES[key].generate_secret(), SCHEMES[key].generate_secret()
        assert a != b and len(a) >= 32


def test_azure_checks_the_username_and_reads_the_id_only_after_verifying(monkeypatch: pytest.MonkeyPatch) -> None:
    azure = SCHEMES["azure_devops_basic"]
    secret = azure.generate_secret()
    other_user = {"Authorization": "Basic " + base64.b64encode(f"admin:{secret}".encode()).decode()}
    assert azure.verify(other_user, BODY, [secret], NOW).reason == "credentials mismatch"
    for bad in ("Bearer abc", "Basic", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert azure.verify({"Authorization": bad}, BODY, [secret], NOW).reason == "malformed authorization header"

    def exploding_loads(_: bytes) -> object:
        raise AssertionError("the body was parsed before the credentials verified")

    monkeypatch.setattr(orjson, "loads", exploding_loads)
    wrong = azure.sign(BODY, "not-the-secret", delivery_id=DELIVERY, timestamp=0)
    assert azure.verify(wrong, BODY, [secret], NOW).reason == "credentials mismatch"


def test_azure_without_a_usable_body_id_falls_back_to_the_body_hash() -> None:
    azure = SCHEMES["azure_devops_basic"]
    secret = azure.generate_secret()
    headers = azure.sign(b"", secret, delivery_id=DELIVERY, timestamp=0)
    for body in (b"not json", b"[1,2]", b'{"id": 42}', b'{"id": "has space"}'):
        assert azure.verify(headers, body, [secret], NOW).delivery_id == body_id(body)


def test_gitlab_prefers_the_retry_stable_idempotency_key() -> None:
    gitlab = SCHEMES["gitlab_token"]
    secret = gitlab.generate_secret()
    both = {"X-Gitlab-Token": secret, "X-Gitlab-Webhook-UUID": "per-attempt", "Idempotency-Key": "per-event"}
    assert gitlab.verify(both, BODY, [secret], NOW).delivery_id == "per-event"
    only_uuid = {"X-Gitlab-Token": secret, "X-Gitlab-Webhook-UUID": "per-attempt"}
    assert gitlab.verify(only_uuid, BODY, [secret], NOW).delivery_id == "per-attempt"


@pytest.mark.parametrize("bad_id", ["x" * 201, "has space", "new\nline", "é"])
def test_unusable_delivery_ids_fall_back_to_the_body_hash(bad_id: str) -> None:
    secret = SCHEMES["github"].generate_secret()
    scheme, headers = signed("github", secret)
    headers["X-GitHub-Delivery"] = bad_id
    assert scheme.verify(headers, BODY, [secret], NOW).delivery_id == body_id(BODY)


def test_sonarqube_deduplicates_on_the_body() -> None:
    sonar = SCHEMES["sonarqube"]
    secret = sonar.generate_secret()
    headers = sonar.sign(BODY, secret, delivery_id="ignored", timestamp=0)
    assert list(headers) == ["X-Sonar-Webhook-HMAC-SHA256"]
    first, again = sonar.verify(headers, BODY, [secret], NOW), sonar.verify(headers, BODY, [secret], NOW)
    assert first.delivery_id == again.delivery_id == "sha256:" + hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("key", ALL)
def test_body_must_be_raw_bytes_and_bad_input_never_raises(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    assert not scheme.verify(headers, BODY.decode(), [secret], NOW).ok  # type: ignore[arg-type]
    assert scheme.verify(headers, bytearray(BODY), [secret], NOW).ok  # type: ignore[arg-type]  # bytes-like is accepted
    weird = {**headers, PROOF_HEADER[key]: "\x00" * 10_000}
    assert isinstance(scheme.verify(weird, BODY, [secret, None], NOW), Verdict)  # type: ignore[list-item]


@pytest.mark.parametrize("key", ["github", "gitlab_token", "jira", "bitbucket", "snyk", "sonarqube",
                                 "azure_devops_basic", "standard_webhooks"])
def test_deliveries_from_the_sandbox_sender_verify(key: str) -> None:
    signing = pytest.importorskip("pmap_sandbox.signing")
    secret = SCHEMES[key].generate_secret()
    senders = {"gitlab_token": "gitlab", "azure_devops_basic": "azure_devops", "standard_webhooks": "standard"}
    sender = senders.get(key, key)
    sender_secret = f"pmap:{secret}" if key == "azure_devops_basic" else secret
    headers = signing.sign(sender, sender_secret, BODY, "ping", DELIVERY)
    now = time.time() if key == "standard_webhooks" else NOW
    verdict = SCHEMES[key].verify(headers, BODY, [secret], now)
    assert verdict.ok, verdict.reason


@pytest.mark.parametrize("key", ALL)
def test_unencodable_header_text_is_rejected_not_raised(key: str) -> None:
    secret = SCHEMES[key].generate_secret()
    scheme, headers = signed(key, secret)
    headers[PROOF_HEADER[key]] = "\ud800" + headers[PROOF_HEADER[key]]
    verdict = scheme.verify(headers, BODY, [secret], NOW)
    assert not verdict.ok
