"""Real scanner outputs through the real endpoint: one corpus file per format, into a matching integration.

``parsed`` must equal the parser-level count of distinct fingerprints, and importing the same file
again must create nothing. The corpus is read in place (``shared/corpus`` beside the checkout, or
``PMAP_CORPUS_DIR``); the test skips when it is absent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pmap.auth.service import get_or_create_org
from pmap.connectors.catalog import connector_types
from pmap.core.db import transaction
from pmap.findings.formats.base import ReportError
from pmap.findings.formats.registry import detect_format, report_formats
from pmap.integrations.models import Integration
from tests.conftest import CORPUS, Api
from tests.findings.pipeline.helpers import upload


def _distinct(path: Path, key: str) -> int:
    fmt = report_formats()[key]
    with open(path, "rb") as fh:
        return len({f.fingerprint(key) for f in fmt.parse(fh)})


def _sample() -> dict[str, tuple[Path, int]]:
    """One parseable corpus file per detected format, with its parser-level distinct count."""
    if not (CORPUS / "expectations.jsonl").exists():
        return {}
    records = [json.loads(line) for line in (CORPUS / "expectations.jsonl").read_text().splitlines() if line.strip()]
    files = sorted({r["file"] for r in records if r.get("file") and not r.get("expect_error")})
    chosen: dict[str, tuple[Path, int]] = {}
    for name in files:
        path = CORPUS / name
        with open(path, "rb") as fh:
            fmt = detect_format(fh.read(65536), path.name)
        if fmt is None or fmt.key in chosen:
            continue
        try:
            count = _distinct(path, fmt.key)
        except ReportError:
            continue
        if count:
            chosen[fmt.key] = (path, count)
    return chosen


SAMPLE = _sample()


def _vendor_for(key: str) -> str:
    """A vendor type listing ``key``, file-only ones first (they need no credentials)."""
    types = sorted(connector_types().values(), key=lambda ct: (not ct.file_only, ct.vendor))
    return next(ct.vendor for ct in types if key in ct.report_formats)


def _integration(api: Api, vendor: str) -> str:
    # written directly: an import never calls the vendor, so an API vendor type needs no real credentials
    ct = connector_types()[vendor]
    with transaction(api.state.sessions) as session:
        row = Integration(organization_id=get_or_create_org(session, "acme").id, name=f"corpus-{vendor}",
                          vendor=vendor, category=ct.category.value, connection={}, credential_fields=[],
                          webhook_state={}, severity_threshold="unknown")
        session.add(row)
        session.flush()
        return str(row.id)


@pytest.mark.skipif(not SAMPLE, reason=f"scanner corpus not found at {CORPUS}")
@pytest.mark.parametrize("key", sorted(SAMPLE) or ["none"])
def test_corpus_file_imports_with_the_parser_count(api: Api, key: str) -> None:
    path, distinct = SAMPLE[key]
    headers = api.token("acme", "operator")
    iid = _integration(api, _vendor_for(key))
    first = upload(api, iid, path.read_bytes(), headers, filename=path.name)
    assert first.status_code == 200, (path.name, first.text)
    s = first.json()
    assert s["format"] == key
    assert s["parsed"] == distinct and s["kept"] == distinct and s["created"] == distinct, (path.name, s)
    again = upload(api, iid, path.read_bytes(), headers, filename=path.name).json()
    assert (again["created"], again["updated"], again["resolved"], again["parsed"]) == (0, distinct, 0, distinct)


def test_the_sample_covers_most_formats() -> None:
    if not SAMPLE:
        pytest.skip(f"scanner corpus not found at {CORPUS}")
    assert len(SAMPLE) >= 30, sorted(SAMPLE)
