"""GET /metrics: Prometheus text without a token, the app's own registry, each metric counting what it says."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update

from pmap.core.db import transaction
from pmap.core.metrics import Delivery, delivery_rejection
from pmap.core.seams import Actor, Purpose
from pmap.integrations.models import Integration
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration as create_scanner
from tests.findings.pipeline.helpers import nessus_report, upload, wait_job
from tests.observability.conftest import samples, scrape, value
from tests.webhooks.conftest import create_integration, payload, signed, vendor_for

REPO = Path(__file__).resolve().parents[2]
DELIVERIES = "pmap_webhook_deliveries_total"


def _secret(api: Api, h: dict[str, str], iid: str) -> str:
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    return str(api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"])


def test_metrics_answer_without_a_token_in_production_and_can_be_turned_off(make_api: Any) -> None:
    prod = make_api(env="production")
    text = scrape(prod.client)  # no Authorization header
    assert "# TYPE pmap_http_request_duration_seconds histogram" in text
    assert "# TYPE pmap_webhook_deliveries_total counter" in text and "pmap_credential_decrypts_total" in text
    off = make_api(metrics_enabled=False)
    assert off.client.get("/metrics").status_code == 404
    assert off.client.get("/healthz").status_code == 200


def test_each_app_counts_in_its_own_registry(api: Api, make_api: Any) -> None:
    other = make_api()
    for _ in range(3):
        api.client.post("/hooks/not-an-id", content=b"{}")
    assert value(scrape(api.client), DELIVERIES, outcome=Delivery.UNKNOWN_INTEGRATION.value) == 3
    assert value(scrape(other.client), DELIVERIES, outcome=Delivery.UNKNOWN_INTEGRATION.value) == 0


def test_request_latency_is_labelled_by_route_template_method_and_status_class(api: Api) -> None:
    h = api.token()
    iid = create_scanner(api, h)
    for _ in range(2):
        assert api.client.get(f"/api/v1/integrations/{iid}", headers=h).status_code == 200
    api.client.get(f"/api/v1/integrations/{uuid.uuid4()}", headers=h)
    api.client.get("/api/v1/no-such-thing/abc")
    text = scrape(api.client)
    count = "pmap_http_request_duration_seconds_count"
    route = "/api/v1/integrations/{integration_id}"
    assert value(text, count, route=route, method="GET", status_class="2xx") == 2
    assert value(text, count, route=route, method="GET", status_class="4xx") == 1
    assert value(text, count, route="unmatched", method="GET", status_class="4xx") == 1
    assert value(text, count, route="/api/v1/integrations", method="POST", status_class="2xx") == 1
    assert iid not in text and "no-such-thing" not in text


def test_webhook_deliveries_are_counted_by_verification_outcome(api: Api, make_api: Any) -> None:
    h = api.token()
    iid = create_integration(api.client, h, "github_issues")
    secret = _secret(api, h, iid)
    before = scrape(api.client)

    def post(target: str, body: bytes, headers: dict[str, str]) -> int:
        return api.client.post(f"/hooks/{target}", content=body, headers=headers).status_code

    good = payload("github", 1)
    good_headers = signed("github", good, secret, event="push")
    assert post(iid, good, good_headers) == 202
    assert post(iid, good, good_headers) == 200  # the same delivery again
    assert post(iid, good, signed("github", good, "not-the-secret")) == 401
    assert post(iid, good, {"Content-Type": "application/json"}) == 401
    assert post(iid, good, {"X-Hub-Signature-256": "sha256=zz"}) == 401
    assert post(str(uuid.uuid4()), good, good_headers) == 401
    assert post("not-an-id", good, good_headers) == 401
    assert post(iid, b"x" * (api.state.settings.webhook_max_body_bytes + 1), good_headers) == 413
    snow = create_integration(api.client, h, vendor_for("servicenow") or "servicenow")
    snow_secret = _secret(api, h, snow)
    old = int((datetime.now(UTC) - timedelta(hours=1)).timestamp())
    assert post(snow, good, signed("servicenow", good, snow_secret, timestamp=old)) == 401
    unsigned = create_integration(api.client, h, "github_issues")  # no secret: accepted unsigned in development
    assert post(unsigned, payload("github", 2), {"X-GitHub-Delivery": "d-1"}) == 202
    assert api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": False}, headers=h).status_code == 200
    assert post(iid, payload("github", 3), good_headers) == 401

    after = scrape(api.client)
    expected = {Delivery.ACCEPTED: 1, Delivery.DUPLICATE: 1, Delivery.BAD_SIGNATURE: 1,
                Delivery.MISSING_SIGNATURE: 1, Delivery.MALFORMED_SIGNATURE: 1, Delivery.UNKNOWN_INTEGRATION: 2,
                Delivery.TOO_LARGE: 1, Delivery.STALE_TIMESTAMP: 1, Delivery.ACCEPTED_UNSIGNED: 1,
                Delivery.DISABLED: 1}
    for outcome in Delivery:
        delta = value(after, DELIVERIES, outcome=outcome.value) - value(before, DELIVERIES, outcome=outcome.value)
        assert delta == expected.get(outcome, 0), outcome
    verified = value(after, "pmap_credential_decrypts_total", purpose="webhook_verification", outcome="success")
    assert verified >= 6  # every delivery checked against a configured secret opened it once
    assert value(after, "pmap_credential_decrypts_total", purpose="reveal", outcome="success") == 2

    limited = make_api(webhook_rate_per_minute=1)
    for i in range(3):
        body = payload("github", 10 + i)
        limited.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))
    # disabled above, so re-enable through the first app and count on the second
    assert api.client.patch(f"/api/v1/integrations/{iid}", json={"enabled": True}, headers=h).status_code == 200
    codes = []
    for i in range(3):
        body = payload("github", 20 + i)
        codes.append(limited.client.post(f"/hooks/{iid}", content=body, headers=signed("github", body, secret))
                     .status_code)
    assert codes == [202, 429, 429]
    assert value(scrape(limited.client), DELIVERIES, outcome=Delivery.RATE_LIMITED.value) == 2


def test_a_secret_that_cannot_be_decrypted_counts_an_unavailable_delivery_and_a_failed_decrypt(
        api: Api, make_api: Any) -> None:
    h = api.token()
    a, b = create_integration(api.client, h, "github_issues"), create_integration(api.client, h, "github_issues")
    _secret(api, h, a)
    secret_b = _secret(api, h, b)
    with transaction(api.state.sessions) as session:  # a's envelope on b's row: bound to a, it fails to open
        row_a = session.get_one(Integration, uuid.UUID(a))
        assert row_a is not None
        sealed = row_a.encrypted_webhook_secret
        session.execute(update(Integration).where(Integration.id == uuid.UUID(b))
                        .values(encrypted_webhook_secret=sealed))
    fresh = make_api()  # nothing cached: it reads the tampered row
    body = payload("github")
    assert fresh.client.post(f"/hooks/{b}", content=body, headers=signed("github", body, secret_b)).status_code == 503
    text = scrape(fresh.client)
    assert value(text, DELIVERIES, outcome=Delivery.UNAVAILABLE.value) == 1
    assert value(text, "pmap_credential_decrypts_total", purpose="webhook_verification", outcome="failure") == 1


def test_decrypts_are_counted_by_purpose(api: Api) -> None:
    h = api.token()
    iid = create_scanner(api, h)
    with api.state.sessions() as session:
        row = session.get_one(Integration, uuid.UUID(iid))
        actor = Actor("system", "test", row.organization_id)
        for _ in range(2):
            with api.state.resolver.resolve(row, purpose=Purpose.SYNC, actor=actor):
                pass
    text = scrape(api.client)
    assert value(text, "pmap_credential_decrypts_total", purpose="sync", outcome="success") == 2
    for purpose in Purpose:  # every purpose is a series from the start
        assert any(s.labels.get("purpose") == purpose.value for s in samples(text))


def test_every_rejection_reason_of_the_receiver_and_the_schemes_has_an_outcome() -> None:
    reasons = []
    for module in ("pmap/webhooks/schemes.py", "pmap/webhooks/receiver.py"):
        source = (REPO / module).read_text()
        reasons += re.findall(r'(?:_Reject\(|Verdict\(False, |reason=)f?"([^"]+)"', source)
    assert len(reasons) > 15
    misuse = {"secrets must be a list", "body must be the raw bytes"}  # a caller's bug, not a delivery's fault
    unclassified = [r for r in reasons if delivery_rejection(r) is Delivery.REJECTED_OTHER and r not in misuse]
    assert unclassified == []
    assert delivery_rejection("unsigned delivery: no webhook secret configured") is Delivery.UNSIGNED
    assert delivery_rejection("no secret configured") is Delivery.EMPTY_SLOT
    assert delivery_rejection("timestamp outside tolerance") is Delivery.STALE_TIMESTAMP


def test_jobs_are_counted_by_kind_and_outcome_with_their_duration(api: Api) -> None:
    h = api.token()
    iid = create_scanner(api, h)
    api.state.settings.import_background_bytes = 100  # every upload runs as a job
    report = nessus_report([{"plugin": i, "host": "10.0.0.1"} for i in range(20)])
    ok = upload(api, iid, report, h)
    bad = upload(api, iid, report[: len(report) // 2], h)
    assert ok.status_code == bad.status_code == 202
    assert wait_job(api, ok.json()["job"]["id"], h)["status"] == "succeeded"
    assert wait_job(api, bad.json()["job"]["id"], h)["status"] == "failed"
    deadline = time.monotonic() + 10  # the counters move right after the job's row is final
    while time.monotonic() < deadline:
        text = scrape(api.client)
        if value(text, "pmap_jobs_finished_total", kind="import", outcome="failed") == 1:
            break
        time.sleep(0.05)
    assert value(text, "pmap_jobs_finished_total", kind="import", outcome="succeeded") == 1
    assert value(text, "pmap_jobs_finished_total", kind="import", outcome="failed") == 1
    assert value(text, "pmap_job_duration_seconds_count", kind="import", outcome="succeeded") == 1
    assert value(text, "pmap_job_duration_seconds_sum", kind="import", outcome="succeeded") > 0


def test_sync_lag_is_the_oldest_last_sync_of_enabled_integrations_per_vendor(api: Api) -> None:
    h = api.token()
    text = scrape(api.client)
    assert not [s for s in samples(text) if s.name == "pmap_sync_lag_seconds"]  # nothing has synced yet
    now = datetime.now(UTC)
    ids = [create_scanner(api, h) for _ in range(3)] + [create_scanner(api, h, vendor="nessus", connection={"base_url": "https://nessus.example:8834"})]
    never = create_scanner(api, h)
    synced = {ids[0]: now - timedelta(seconds=600), ids[1]: now - timedelta(seconds=60),
              ids[2]: now - timedelta(days=3), ids[3]: now - timedelta(seconds=120)}
    with transaction(api.state.sessions) as session:
        for iid, at in synced.items():
            session.execute(update(Integration).where(Integration.id == uuid.UUID(iid)).values(last_synced_at=at))
        # a disabled integration does not sync: its growing lag is not an alarm
        session.execute(update(Integration).where(Integration.id == uuid.UUID(ids[2])).values(enabled=False))
    text = scrape(api.client)
    assert 600 <= value(text, "pmap_sync_lag_seconds", vendor="tenable_vm") < 660
    assert value(text, "pmap_synced_integrations", vendor="tenable_vm") == 2
    assert 120 <= value(text, "pmap_sync_lag_seconds", vendor="nessus") < 180
    assert value(text, "pmap_synced_integrations", vendor="nessus") == 1
    assert never not in text and not any(i in text for i in ids)
    assert value(text, "pmap_sync_lag_read_errors_total") == 0
