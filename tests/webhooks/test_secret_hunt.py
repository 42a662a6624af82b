"""Webhook secrets surface only in the reveal answer: not in other responses, logs or database dumps."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Api
from tests.security.test_canary_hunt import _dump

from .conftest import create_integration, deliveries, payload, settle, signed

SCHEMES_TO_HUNT = {"gitlab_issues": "gitlab_token", "azure_boards": "azure_devops_basic", "jira_cloud": "jira",
                   "jenkins": "standard_webhooks", "servicenow": "servicenow"}


def test_webhook_secrets_absent_from_responses_logs_and_database(
        api: Api, capfd: pytest.CaptureFixture[str], db_url: str) -> None:
    h = api.token()
    secrets: list[str] = []
    texts: list[str] = []
    for vendor, scheme in SCHEMES_TO_HUNT.items():
        iid = create_integration(api.client, h, vendor)
        base = f"/api/v1/integrations/{iid}/webhook"
        texts.append(api.client.post(base + "/generate", headers=h).text)
        first = api.client.post(base + "/reveal", headers=h).json()["secret"]
        texts.append(api.client.post(base + "/regenerate", json={"grace_seconds": 600}, headers=h).text)
        second = api.client.post(base + "/reveal", headers=h).json()["secret"]
        secrets += [first, second]
        for secret in (first, second, "not-the-secret-0123456789"):
            body = payload(scheme)
            r = api.client.post(f"/hooks/{iid}", content=body, headers=signed(scheme, body, secret))
            texts.append(r.text)
        settle(api)
        texts += [api.client.get(base, headers=h).text, api.client.get(base + "/deliveries", headers=h).text,
                  api.client.get(base + "/ticket-events", headers=h).text,
                  api.client.get(f"/api/v1/integrations/{iid}", headers=h).text]
        assert [i["outcome"] for i in deliveries(api.client, h, iid)].count("rejected") == 1
    texts += [api.client.get("/api/v1/audit-events", params={"limit": 200}, headers=h).text,
              api.client.get("/api/v1/integrations", headers=h).text, api.client.get("/openapi.json").text]
    logs = capfd.readouterr()
    assert "webhook delivery rejected" in logs.err  # the receiver did log
    everything = "\n".join(texts) + logs.out + logs.err
    dump = _dump(db_url)
    assert b"webhook_deliveries" in dump  # the dump holds the delivery table
    for secret in secrets:
        assert secret not in everything, "a webhook secret leaked into a response or a log line"
        basic = base64.b64encode(f"pmap:{secret}".encode()).decode()  # Azure DevOps' Authorization header
        assert basic not in everything, "a webhook secret leaked base64-encoded (Basic auth)"
        assert secret.encode() not in dump, "a webhook secret is stored in plaintext"
