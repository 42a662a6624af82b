"""Log lines carry the id of the request they come from (X-Correlation-ID): in the webhook receiver, and in a
background import, whose lines also carry the job's id."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pmap.core.logs import JsonFormatter, RedactingFormatter
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration as create_scanner
from tests.findings.pipeline.helpers import nessus_report, upload, wait_job
from tests.webhooks.conftest import create_integration, payload, signed


class _Lines(logging.Handler):
    """Formats each record when it is emitted, in the emitting thread, as production (JSON) and development do."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.json = JsonFormatter()
        self.text = RedactingFormatter("%(levelname)s %(name)s: %(message)s")
        self.docs: list[dict[str, Any]] = []
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.docs.append(json.loads(self.json.format(record)))
        self.texts.append(self.text.format(record))

    def matching(self, needle: str) -> list[tuple[dict[str, Any], str]]:
        return [(d, t) for d, t in zip(self.docs, self.texts, strict=True) if needle in d["message"]]


@pytest.fixture
def lines() -> Iterator[_Lines]:
    handler = _Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


def test_receiver_lines_carry_the_delivery_request_id(api: Api, lines: _Lines) -> None:
    h = api.token()
    unsigned = create_integration(api.client, h, "github_issues")  # no secret: accepted unsigned, with a warning
    r = api.client.post(f"/hooks/{unsigned}", content=payload("github"), headers={"X-GitHub-Delivery": "d-1"})
    assert r.status_code == 202
    [(doc, text)] = lines.matching(f"accepted an unsigned webhook delivery for integration {unsigned}")
    assert doc["correlation_id"] == r.headers["x-correlation-id"] and f"[cid={doc['correlation_id']}]" in text

    signed_iid = create_integration(api.client, h, "github_issues")
    assert api.client.post(f"/api/v1/integrations/{signed_iid}/webhook/generate", headers=h).status_code == 201
    body = payload("github")
    r = api.client.post(f"/hooks/{signed_iid}", content=body, headers=signed("github", body, "not-the-secret"))
    assert r.status_code == 401
    [(doc, text)] = lines.matching(f"webhook delivery rejected: integration={signed_iid}")
    assert doc["correlation_id"] == r.headers["x-correlation-id"] and f"[cid={doc['correlation_id']}]" in text


def test_a_background_import_logs_with_the_request_id_that_queued_it_and_its_job_id(api: Api, lines: _Lines) -> None:
    h = api.token()
    iid = create_scanner(api, h)
    api.state.settings.import_background_bytes = 100  # the upload runs as a job, in a worker thread
    r = upload(api, iid, nessus_report([{"plugin": 1}, {"plugin": 2}]), h)
    assert r.status_code == 202
    job_id = r.json()["job"]["id"]
    assert wait_job(api, job_id, h)["status"] == "succeeded"
    deadline = time.monotonic() + 10  # the line follows the job's final row
    while not lines.matching(f"import job {job_id} succeeded") and time.monotonic() < deadline:
        time.sleep(0.02)
    [(doc, text)] = lines.matching(f"import job {job_id} succeeded")
    assert doc["correlation_id"] == r.headers["x-correlation-id"] and doc["job_id"] == job_id
    assert f"[cid={r.headers['x-correlation-id']}] [job={job_id}]" in text
    # nothing leaks into the lines of the next request
    api.client.get("/healthz")
    assert all(d.get("job_id") in (None, job_id) for d in lines.docs)
