"""Audit actions and outcomes are closed vocabularies: written, filtered and migrated as such."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import create_engine, insert, text

from pmap.audit.models import AuditEvent
from pmap.auth.models import Organization
from pmap.core.audit_vocabulary import LEGACY_OUTCOMES, AuditAction, AuditOutcome
from pmap.migrations import alembic_config, upgrade
from tests.conftest import Api
from tests.findings.pipeline.helpers import create_integration, nessus_report, upload

#: (action, outcome) rows as revision 0004 could hold them
OLD_ROWS = [("findings.import", "ok"), ("findings.import", "failed"), ("credentials.decrypt", "success"),
            ("access.denied", "failure")]


def _outcomes(url: str) -> list[tuple[str, str]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT action, outcome FROM audit_events ORDER BY created_at")).all()
    engine.dispose()
    return [(a, o) for a, o in rows]


def test_the_migration_rewrites_old_outcomes_to_the_one_vocabulary(fresh_url: str) -> None:
    upgrade(fresh_url, "0004")
    engine = create_engine(fresh_url)
    org = uuid.uuid4()
    with engine.begin() as conn:  # the tables as 0004 left them (the models: 0005 changes no column)
        conn.execute(insert(Organization), [{"id": org, "name": "acme", "created_at": datetime.now(UTC)}])
        conn.execute(insert(AuditEvent), [
            {"id": uuid.uuid4(), "organization_id": org, "actor": "system:test", "action": action, "outcome": outcome,
             "integration_id": None, "purpose": None, "detail": {},
             "created_at": datetime(2026, 1, 1, 0, 0, i, tzinfo=UTC)}
            for i, (action, outcome) in enumerate(OLD_ROWS)])
    engine.dispose()
    upgrade(fresh_url, "head")
    assert _outcomes(fresh_url) == [("findings.import", "success"), ("findings.import", "failure"),
                                    ("credentials.decrypt", "success"), ("access.denied", "failure")]
    assert {o for _, o in _outcomes(fresh_url)} <= {o.value for o in AuditOutcome}
    command.downgrade(alembic_config(fresh_url), "0004")  # the imports get their old words back
    assert _outcomes(fresh_url) == OLD_ROWS


def test_the_legacy_map_and_the_migration_agree() -> None:
    from importlib import import_module

    migration = import_module("pmap.migrations.versions.0005_audit_outcomes")
    assert {old: new.value for old, new in LEGACY_OUTCOMES.items()} == migration._RENAMED


def test_an_import_is_audited_as_a_success_or_a_failure(api: Api) -> None:
    h = api.token()
    iid = create_integration(api, h)
    assert upload(api, iid, nessus_report([{"plugin": 1}]), h).status_code == 200
    assert upload(api, iid, b"<NessusClientData_v2><Report", h).status_code == 422
    events = api.client.get("/api/v1/audit-events", params={"action": "findings.import"}, headers=h).json()["items"]
    assert [e["outcome"] for e in events] == ["failure", "success"]
    failed = api.client.get("/api/v1/audit-events", params={"action": "findings.import", "outcome": "failure"},
                            headers=h).json()["items"]
    assert [e["id"] for e in failed] == [events[0]["id"]]


@pytest.mark.parametrize(("name", "value"), [("outcome", "ok"), ("outcome", "failed"), ("outcome", "bogus"),
                                             ("action", "credentials.bogus"), ("action", "")])
def test_the_audit_filters_take_only_their_vocabulary(api: Api, name: str, value: str) -> None:
    r = api.client.get("/api/v1/audit-events", params={name: value}, headers=api.token())
    assert r.status_code == 422, r.text
    problem = r.json()["error"]["fields"][0]
    assert problem["field"] == name
    assert ("'success'" if name == "outcome" else "'access.denied'") in problem["reason"]  # names the allowed ones


def test_every_action_the_code_writes_is_in_the_vocabulary() -> None:
    """The stored strings did not change: the enum's values are the ones the docs and old rows name."""
    assert AuditAction("credentials.decrypt") is AuditAction.CREDENTIALS_DECRYPT
    assert len({a.value for a in AuditAction}) == len(AuditAction)
    assert all(a.value == a.value.strip().lower() and " " not in a.value for a in AuditAction)
