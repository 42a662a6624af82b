"""Webhook registration, pings and the control delivery route, checked by a loopback receiver that
verifies each vendor's signature on the raw bytes it received."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from urllib.parse import parse_qs

import httpx
import pytest

from pmap_sandbox.server import SandboxServer

from .conftest import Receiver, cred, vendor_url

ORG = "4a18d42f-0706-4ad0-b127-24078731fbed"


def _hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _create_github_hook(
    client: httpx.Client, sandbox: SandboxServer, repo: str, url: str, secret: str, content_type: str = "json"
) -> dict:
    response = client.post(
        vendor_url(sandbox, "github_code_scanning") + f"/repos/example/{repo}/hooks",
        headers={"Authorization": f"Bearer {cred()}"},
        json={
            "name": "web",
            "active": True,
            "events": ["code_scanning_alert"],
            "config": {"url": url, "content_type": content_type, "secret": secret},
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_github_hook_is_pinged_on_creation_and_on_request(
    sandbox: SandboxServer, client: httpx.Client, receiver: Receiver
) -> None:
    secret = "gh-" + uuid.uuid4().hex
    hook = _create_github_hook(client, sandbox, "shop", receiver.url, secret)
    assert hook["config"]["secret"] == "********" and hook["ping_url"].endswith(f"/hooks/{hook['id']}/pings")
    receiver.wait_for(1)  # GitHub pings a new hook
    ping = client.post(hook["ping_url"], headers={"Authorization": f"Bearer {cred()}"})
    assert ping.status_code == 204
    deliveries = receiver.wait_for(2)
    assert len(deliveries) == 2
    for d in deliveries:
        assert d.headers["x-hub-signature-256"] == "sha256=" + _hex(secret, d.body)
        assert d.headers["x-github-event"] == "ping"
        assert _is_uuid(d.headers["x-github-delivery"])
        assert json.loads(d.body)["hook_id"] == hook["id"]
    assert deliveries[0].headers["x-github-delivery"] != deliveries[1].headers["x-github-delivery"]
    after = client.get(hook["url"], headers={"Authorization": f"Bearer {cred()}"}).json()
    assert after["last_response"]["code"] == 200


def test_github_form_hook_signs_the_form_body(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    secret = "gh-form-" + uuid.uuid4().hex
    _create_github_hook(client, sandbox, "form", receiver.url, secret, content_type="form")
    delivery = receiver.wait_for(1)[0]
    assert delivery.headers["content-type"] == "application/x-www-form-urlencoded"
    assert delivery.headers["x-hub-signature-256"] == "sha256=" + _hex(secret, delivery.body)
    assert json.loads(parse_qs(delivery.body.decode())["payload"][0])["zen"]


def test_github_hooks_need_hook_scope_and_a_url(sandbox: SandboxServer, client: httpx.Client) -> None:
    url = vendor_url(sandbox, "github_code_scanning") + "/repos/example/shop/hooks"
    denied = client.post(url, headers={"Authorization": f"Bearer {cred('noperm')}"}, json={"config": {"url": "x"}})
    assert denied.status_code == 404
    invalid = client.post(url, headers={"Authorization": f"Bearer {cred()}"}, json={"config": {}})
    assert invalid.status_code == 422 and invalid.json()["message"] == "Validation Failed"


def test_snyk_webhook_create_list_ping(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    v1, auth = sandbox.base_url + "/snyk/v1", {"Authorization": f"token {cred()}"}
    secret = "snyk-" + uuid.uuid4().hex
    created = client.post(f"{v1}/org/{ORG}/webhooks", headers=auth, json={"url": receiver.url, "secret": secret})
    assert created.status_code == 200
    hook = created.json()
    assert set(hook) == {"id", "url"}
    listed = client.get(f"{v1}/org/{ORG}/webhooks", headers=auth).json()
    assert hook in listed["results"] and listed["total"] == len(listed["results"])
    receiver.wait_for(1)
    assert client.post(f"{v1}/org/{ORG}/webhooks/{hook['id']}/ping", headers=auth).status_code == 200
    for d in receiver.wait_for(2):
        assert d.headers["x-hub-signature"] == "sha256=" + _hex(secret, d.body)
        assert d.headers["x-snyk-event"] == "ping/v0"
        assert d.headers["x-snyk-transport-id"]
        assert json.loads(d.body) == {"webhookId": hook["id"]}
    assert client.delete(f"{v1}/org/{ORG}/webhooks/{hook['id']}", headers=auth).status_code == 200
    assert client.get(f"{v1}/org/{ORG}/webhooks/{hook['id']}", headers=auth).status_code == 404


def _deliver(
    client: httpx.Client,
    sandbox: SandboxServer,
    vendor: str,
    url: str,
    secret: str,
    event: str = "ping",
    payload: dict | None = None,
) -> httpx.Response:
    return client.post(
        f"{sandbox.base_url}/_sandbox/deliver/{vendor}",
        json={"url": url, "secret": secret, "event": event, "payload": payload or {"n": 1}},
    )


@pytest.mark.parametrize("vendor", ["github_issues", "github_code_scanning"])
def test_control_delivery_github_scheme(
    sandbox: SandboxServer, client: httpx.Client, receiver: Receiver, vendor: str
) -> None:
    answer = _deliver(client, sandbox, vendor, receiver.url, "s3cret", "issues", {"action": "opened"}).json()
    assert answer["status"] == 200 and answer["scheme"] == "github"
    d = receiver.wait_for(1)[0]
    assert d.headers["x-hub-signature-256"] == "sha256=" + _hex("s3cret", d.body)
    assert d.headers["x-github-event"] == "issues"
    assert json.loads(d.body) == {"action": "opened"}


def test_control_delivery_gitlab_token(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    assert _deliver(client, sandbox, "gitlab_ci", receiver.url, "gl-token", "Pipeline Hook").json()["status"] == 200
    d = receiver.wait_for(1)[0]
    assert d.headers["x-gitlab-token"] == "gl-token" and d.headers["x-gitlab-event"] == "Pipeline Hook"
    # GitLab: a new webhook UUID per send, an Idempotency-Key kept across retries (gitlab MRs 125338, 160952)
    assert d.headers["idempotency-key"] and d.headers["idempotency-key"] != d.headers["x-gitlab-webhook-uuid"]


def test_control_delivery_servicenow_uses_pmaps_scheme(sandbox: SandboxServer, client: httpx.Client,
                                                        receiver: Receiver) -> None:
    from pmap.webhooks.schemes import SCHEMES

    assert _deliver(client, sandbox, "servicenow", receiver.url, "sn-secret").json()["status"] == 200
    d = receiver.wait_for(1)[0]
    verdict = SCHEMES["servicenow"].verify(d.headers, d.body, ["sn-secret"], float(d.headers["x-pmap-timestamp"]))
    assert verdict.ok, verdict.reason
    assert not SCHEMES["servicenow"].verify(d.headers, d.body, ["other"], float(d.headers["x-pmap-timestamp"])).ok


@pytest.mark.parametrize("vendor", ["jira_cloud", "snyk"])
def test_control_delivery_hub_signature_sha256(
    sandbox: SandboxServer, client: httpx.Client, receiver: Receiver, vendor: str
) -> None:
    _deliver(client, sandbox, vendor, receiver.url, "hub-secret")
    d = receiver.wait_for(1)[0]
    assert d.headers["x-hub-signature"] == "sha256=" + _hex("hub-secret", d.body)


def test_control_delivery_sonarqube_bare_hex(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    _deliver(client, sandbox, "sonarqube", receiver.url, "sonar-secret-16chars", "analysis")
    d = receiver.wait_for(1)[0]
    assert d.headers["x-sonar-webhook-hmac-sha256"] == _hex("sonar-secret-16chars", d.body)


def test_control_delivery_azure_devops_basic(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    _deliver(client, sandbox, "azure_boards", receiver.url, "hookuser:hookpass", "workitem.updated")
    d = receiver.wait_for(1)[0]
    assert d.headers["authorization"] == "Basic " + base64.b64encode(b"hookuser:hookpass").decode()


def test_control_delivery_standard_webhooks(sandbox: SandboxServer, client: httpx.Client, receiver: Receiver) -> None:
    key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(key).decode()
    _deliver(client, sandbox, "some_vendor", receiver.url, secret)
    d = receiver.wait_for(1)[0]
    signed = f"{d.headers['webhook-id']}.{d.headers['webhook-timestamp']}.".encode() + d.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert d.headers["webhook-signature"] == f"v1,{expected}"


def test_control_delivery_reports_receiver_status_and_failures(
    sandbox: SandboxServer, client: httpx.Client, receiver: Receiver
) -> None:
    receiver.status = 401
    assert _deliver(client, sandbox, "github_issues", receiver.url, "x").json()["status"] == 401
    unreachable = _deliver(client, sandbox, "github_issues", "http://127.0.0.1:1/hook", "x")
    assert unreachable.status_code == 502 and "delivery failed" in unreachable.json()["error"]
