"""Another organization's integration is a 404 on every path that resolves its secrets, never a 500,
and nothing of it is decrypted: by the API's scoped lookup, and by the resolver itself when a caller
hands it a row of another organization."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from pmap.audit.models import AuditEvent
from pmap.auth.principal import Principal, Role
from pmap.auth.service import get_or_create_org
from pmap.core.audit_vocabulary import AuditAction
from pmap.core.db import transaction
from pmap.core.errors import NotFound
from pmap.integrations import permissions
from pmap.integrations.models import Integration
from pmap.integrations.schemas import IntegrationUpdate
from pmap.integrations.service import update
from pmap.integrations.testing import SavedTestOverlay, run_saved_test
from pmap.webhooks import service, setup
from tests.conftest import Api

GITHUB = {"name": "gh", "vendor": "github_issues", "connection": {"repository": "acme/webapp"},
          "credentials": {"token": "ghp_" + "s" * 36}}


def _acme_integration(api: Api) -> str:
    h = api.token("acme")
    iid = str(api.client.post("/api/v1/integrations", json=GITHUB, headers=h).json()["id"])
    assert api.client.post(f"/api/v1/integrations/{iid}/webhook/generate", headers=h).status_code == 201
    return iid


def _decrypts(api: Api, iid: str) -> list[tuple[str, str]]:
    with api.state.sessions() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.integration_id == uuid.UUID(iid),
                                                  AuditEvent.action == AuditAction.CREDENTIALS_DECRYPT.value))
        return [(r.outcome, str(r.organization_id)) for r in rows]


def test_another_organization_gets_404_on_every_endpoint_that_resolves(api: Api) -> None:
    iid = _acme_integration(api)
    theirs = api.token("globex", "admin")
    hook = f"/api/v1/integrations/{iid}/webhook"
    calls = [
        ("post", f"/api/v1/integrations/{iid}/test", {}),
        ("patch", f"/api/v1/integrations/{iid}", {"credentials": {"token": "ghp_" + "t" * 36}}),
        ("post", f"{hook}/reveal", None),
        ("post", f"{hook}/regenerate", {"grace_seconds": 0}),
        ("post", f"{hook}/register", None),
        ("post", f"{hook}/auto-setup", None),
        ("post", f"/api/v1/integrations/{iid}/permissions-check", None),
    ]
    for method, path, body in calls:
        r = api.client.request(method, path, json=body, headers=theirs)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), (path, r.text)
    assert _decrypts(api, iid) == []


def _globex_admin(api: Api) -> Principal:
    with transaction(api.state.sessions) as session:
        org = get_or_create_org(session, "globex")
        return Principal(token_id=None, name="globex-admin", organization_id=org.id, role=Role.ADMIN)


def _paths(api: Api) -> dict[str, Callable[[Any, Principal, Integration], object]]:
    state = api.state
    return {
        "saved connection test": lambda s, p, row: run_saved_test(s, state.settings, state.resolver, p, row,
                                                                  SavedTestOverlay()),
        "credential update": lambda s, p, row: update(
            s, state.keys, state.resolver, p, row,
            IntegrationUpdate.model_validate({"credentials": {"token": "ghp_" + "t" * 36}}),
            settings=state.settings, audit=state.audit),
        "webhook reveal": lambda s, p, row: service.reveal(s, state, p, row),
        "webhook rotation": lambda s, p, row: service.regenerate(s, state, p, row, 0),
        "webhook registration": lambda s, p, row: setup.register(s, state, p, row),
        "permissions check": lambda s, p, row: permissions.check_permissions(s, state, p, row),
    }


@pytest.mark.parametrize("path", ["saved connection test", "credential update", "webhook reveal", "webhook rotation",
                                  "webhook registration", "permissions check"])
def test_the_resolver_itself_answers_404_for_a_row_of_another_organization(api: Api, path: str) -> None:
    """Should a caller skip the scoped lookup, the resolver still opens nothing and answers the same 404
    (it was a CryptoError, a 500)."""
    iid = _acme_integration(api)
    theirs = _globex_admin(api)
    with api.state.sessions() as session:
        row = session.get(Integration, uuid.UUID(iid))
        assert row is not None
        with pytest.raises(NotFound):
            _paths(api)[path](session, theirs, row)
        session.rollback()
    assert _decrypts(api, iid) == []
