"""Findings written straight to the database, for tests that need exact values in chosen organizations."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pmap.auth.service import get_or_create_org
from pmap.core.db import transaction
from pmap.findings.models import Finding
from tests.conftest import Api

_T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ticks = itertools.count()  # each finding stored is newer than the one before, across calls


def org_id(api: Api, org: str = "acme") -> uuid.UUID:
    """The id of organization ``org`` (created if needed)."""
    with transaction(api.state.sessions) as session:
        return get_or_create_org(session, org).id


def store(api: Api, org: str, integration_id: str, items: list[dict[str, Any]]) -> list[str]:
    """Write one finding per item (its keys override open, medium, nessus defaults), each newer than the
    one before; their ids, in order."""
    organization = org_id(api, org)
    ids = []
    with transaction(api.state.sessions) as session:
        for n, item in enumerate(items):
            severity = item.pop("severity", "medium")
            created = _T0 + timedelta(seconds=next(_ticks))
            values: dict[str, Any] = {
                "id": uuid.uuid4(), "organization_id": organization, "integration_id": uuid.UUID(integration_id),
                "format": "nessus", "scope": "default", "fingerprint": uuid.uuid4().hex, "title": f"finding {n}",
                "mapped_severity": severity, "severity": severity, "severity_source": "vendor", "status": "open",
                "cve_ids": [], "cwe_ids": [], "other_ids": [], "references": [], "extra": {}, "tags": [],
                "first_seen": created, "last_seen": created, "created_at": created, "updated_at": created,
                **item,
            }
            session.add(Finding(**values))
            ids.append(str(values["id"]))
    return ids
