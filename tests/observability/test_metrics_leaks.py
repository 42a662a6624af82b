"""/metrics answers anyone: no secret and no value a client chose may reach it. Canaries go everywhere a
client or an integration's owner can put a value; none comes out, and every label value of every sample
belongs to a set fixed by the build."""

from __future__ import annotations

import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from pmap.connectors.catalog import connector_types
from pmap.core.db import transaction
from pmap.core.metrics import (
    AUDIT_CHAIN_FAILURES,
    DATA_KEY_SOURCES,
    KEK_PROVIDERS,
    METHODS,
    OTHER,
    STATUS_CLASSES,
    Budget,
    Delivery,
    JobOutcome,
    RouteTemplates,
)
from pmap.core.seams import Purpose
from pmap.findings.formats.registry import report_formats
from pmap.findings.jobs import JOB_KINDS
from pmap.integrations.models import Integration
from tests.conftest import Api, canary
from tests.findings.pipeline.helpers import nessus_report, upload, wait_job
from tests.observability.conftest import samples, scrape
from tests.webhooks.conftest import integration_body, signed


def _bounded_sets(api: Api) -> dict[str, set[str]]:
    return {
        "route": set(RouteTemplates(api.client.app.routes).templates),  # type: ignore[attr-defined]  # a FastAPI app
        "method": set(METHODS) | {OTHER},
        "status_class": set(STATUS_CLASSES) | {OTHER},
        "outcome": {d.value for d in Delivery} | {o.value for o in JobOutcome} | {"success", "failure"},
        "purpose": {p.value for p in Purpose} | {OTHER},
        "kind": {*JOB_KINDS, OTHER},
        "vendor": set(connector_types()) | {OTHER},
        "format": set(report_formats()) | {OTHER},
        "budget": {b.value for b in Budget} | {OTHER},
        "what": set(AUDIT_CHAIN_FAILURES),
        "provider": set(KEK_PROVIDERS) | {OTHER},
        "source": set(DATA_KEY_SOURCES) | {OTHER},
    }


def test_no_canary_and_no_unbounded_label_value_reaches_metrics(api: Api) -> None:
    h = api.token()
    marks = [canary(str(i)) for i in range(12)]
    body = integration_body("github_issues", marker=marks[0], name=marks[1])
    body["credentials"] = {k: marks[2] for k in body["credentials"]}
    r = api.client.post("/api/v1/integrations", json=body, headers=h)
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    secret = api.client.post(f"/api/v1/integrations/{iid}/webhook/reveal", headers=h).json()["secret"]
    marks.append(secret)

    # paths, query strings, headers, methods, bad tokens: each with a canary
    quoted = urllib.parse.quote(marks[3])
    api.client.get(f"/api/v1/integrations/{marks[3]}", headers=h)
    api.client.get(f"/{marks[3]}/x/{quoted}?{marks[4]}={marks[4]}")
    api.client.get(f"/api/v1/integrations?name={marks[4]}&{marks[4]}=1", headers=h)
    api.client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {marks[5]}", "X-Canary": marks[5]})
    api.client.request(marks[6].upper(), f"/api/v1/integrations/{iid}", headers=h)  # a method nobody serves
    api.client.get(f"/api/v1/integrations/{iid}/{marks[6]}", headers=h)
    api.client.get(f"/api/v1/findings?q={marks[6]}", headers=h)

    # webhook deliveries: canaries in the id, the body, the delivery and event headers, a forged signature
    payload = b'{"canary":"%s"}' % marks[7].encode()
    hook = signed("github", payload, secret, delivery_id=marks[8], event=marks[8])
    api.client.post(f"/hooks/{iid}", content=payload, headers=hook)
    api.client.post(f"/hooks/{iid}", content=payload, headers={**hook, "X-Hub-Signature-256": f"sha256={marks[9]}"})
    api.client.post(f"/hooks/{marks[9]}", content=payload, headers=hook)
    api.client.post(f"/hooks/{uuid.uuid4()}?{marks[9]}=1", content=payload, headers=hook)
    api.client.post(f"/hooks/{marks[9]}", content=b"x" * (api.state.settings.webhook_max_body_bytes + 1))

    # an import whose file name, content and job carry canaries, as a background job
    scanner = api.client.post("/api/v1/integrations", json={
        "name": marks[10], "vendor": "tenable_vm", "credentials": {"access_key": marks[10], "secret_key": marks[10]}},
        headers=h)
    assert scanner.status_code == 201, scanner.text
    sid = scanner.json()["id"]
    api.state.settings.import_background_bytes = 100
    report = nessus_report([{"plugin": 1, "name": marks[11], "description": marks[11]}])
    job = upload(api, sid, report, h, filename=f"{marks[11]}.nessus")
    assert job.status_code == 202, job.text
    wait_job(api, job.json()["job"]["id"], h)

    # a row whose vendor this build does not know (written behind the API's back) and a synced one
    with transaction(api.state.sessions) as session:
        session.execute(update(Integration).where(Integration.id == uuid.UUID(sid))
                        .values(vendor=marks[11][:60], last_synced_at=datetime.now(UTC) - timedelta(minutes=5)))
        session.execute(update(Integration).where(Integration.id == uuid.UUID(iid))
                        .values(last_synced_at=datetime.now(UTC) - timedelta(minutes=1)))

    time.sleep(0.2)  # the job's counters move right after its row is final
    text = scrape(api.client)
    lowered = text.lower()
    for mark in marks + [iid, sid]:
        assert mark.lower() not in lowered, mark
    allowed = _bounded_sets(api)
    seen_labels: set[str] = set()
    for sample in samples(text):
        for name, label in sample.labels.items():
            seen_labels.add(name)
            if name in ("le", "quantile"):
                float(label)  # a bucket bound
                continue
            assert name in allowed, (sample.name, name)
            assert label in allowed[name], (sample.name, name, label)
    assert {"route", "method", "status_class", "outcome", "purpose", "kind", "vendor"} <= seen_labels
    assert "python_info" not in text  # no interpreter version to fingerprint the service by
    vendors = {s.labels["vendor"] for s in samples(text) if s.name == "pmap_sync_lag_seconds"}
    assert vendors == {"github_issues", OTHER}  # the unknown vendor is bucketed, never echoed
    methods = {s.labels["method"] for s in samples(text) if "method" in s.labels}
    assert OTHER in methods
