"""Webhook endpoints: secret lifecycle under /api/v1 and receivers under /hooks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.orm import Session

from pmap.auth.deps import OUTBOUND, OUTBOUND_RESPONSES, Admin, Operator, Viewer
from pmap.auth.principal import Principal
from pmap.core.deps import DbSession, StateDep
from pmap.integrations.models import Integration
from pmap.webhooks import receiver, service, setup
from pmap.webhooks.models import Outcome
from pmap.webhooks.schemas import (
    AutoSetupResult,
    DeliveryPage,
    RegenerateRequest,
    RegisterResult,
    WebhookStatus,
)

router = APIRouter(tags=["webhooks"])  # mounted under /api/v1
receiver_router = APIRouter(tags=["webhook receivers"])  # mounted at the root: /hooks/{integration_id}

_BASE = "/integrations/{integration_id}/webhook"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _owned(session: Session, principal: Principal, integration_id: uuid.UUID) -> Integration:
    return principal.get_owned(session, Integration, integration_id, what="integration")


@router.get(_BASE, response_model=WebhookStatus)
def webhook_status(integration_id: uuid.UUID, session: DbSession, state: StateDep, principal: Viewer) -> WebhookStatus:
    """Webhook status: configured, registered, receiving URL, last deliveries and rejections. Never the secret."""
    return service.status(session, state.settings, _owned(session, principal, integration_id))


@router.post(_BASE + "/generate", response_model=WebhookStatus, status_code=201)
def generate_secret(integration_id: uuid.UUID, session: DbSession, state: StateDep,
                    principal: Operator) -> WebhookStatus:
    """Generate and store a webhook secret in the vendor's format (409 if one exists). Not returned; audited."""
    row = service.generate(session, state, principal, _owned(session, principal, integration_id))
    return service.status(session, state.settings, row)


@router.post(_BASE + "/reveal", responses={200: {"description": "`{\"secret\": ...}`, not cached"}})
def reveal_secret(integration_id: uuid.UUID, session: DbSession, state: StateDep, principal: Admin) -> JSONResponse:
    """The current webhook secret, to paste into the vendor. Admin only, audited, never cached."""
    secret = service.reveal(session, state, principal, _owned(session, principal, integration_id))
    return JSONResponse({"secret": secret}, headers=_NO_STORE)


@router.post(_BASE + "/regenerate", response_model=WebhookStatus)
def regenerate_secret(
    integration_id: uuid.UUID, session: DbSession, state: StateDep, principal: Admin,
    body: RegenerateRequest | None = None,
) -> WebhookStatus:
    """Rotate the secret; the previous one stays valid for the grace period (``grace_seconds``). Audited."""
    grace = body.grace_seconds if body else None
    row = service.regenerate(session, state, principal, _owned(session, principal, integration_id), grace)
    return service.status(session, state.settings, row)


_NOT_APPROVED: dict[int | str, dict[str, object]] = {403: {"description": (
    "the caller's role may not send the secret to this target: after a change of target (base URL, TLS trust, "
    "vendor-side project) only an admin registers")}}


@router.post(_BASE + "/register", response_model=RegisterResult,
             dependencies=[OUTBOUND], responses={**OUTBOUND_RESPONSES, **_NOT_APPROVED})
def register_webhook(integration_id: uuid.UUID, session: DbSession, state: StateDep,
                     principal: Operator) -> RegisterResult:
    """Install PMAP's receiver on the vendor with the current secret. An operator may do so only on the
    target the secret was generated on or an admin registered last; an admin's call approves its target."""
    return setup.register(session, state, principal, _owned(session, principal, integration_id))


@router.post(_BASE + "/auto-setup", response_model=AutoSetupResult,
             dependencies=[OUTBOUND], responses={**OUTBOUND_RESPONSES, **_NOT_APPROVED})
def auto_setup(integration_id: uuid.UUID, session: DbSession, state: StateDep, principal: Operator) -> AutoSetupResult:
    """Generate a secret if missing, register, trigger the vendor's test delivery and check it arrived verified
    (registration as for ``register``: an operator only on an approved target)."""
    return setup.auto_setup(session, state, principal, _owned(session, principal, integration_id))


@router.get(_BASE + "/deliveries", response_model=DeliveryPage)
def list_deliveries(
    integration_id: uuid.UUID, session: DbSession, principal: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[Outcome | None, Query()] = None,
) -> DeliveryPage:
    """Recent deliveries, newest first, with their outcome (accepted, duplicate, rejected, processed, failed)."""
    row = _owned(session, principal, integration_id)
    return service.list_deliveries(session, row, limit=limit, cursor=cursor, outcome=outcome.value if outcome else None)


@receiver_router.post("/hooks/{integration_id}", status_code=202, responses={
    200: {"description": "a duplicate, already received"}, 401: {"description": "rejected"},
    413: {"description": "body too large"}, 429: {"description": "rate limited"}})
async def receive(integration_id: str, request: Request) -> Response:
    """Receive one vendor delivery. The signature is the authentication; a rejection says nothing more."""
    body = await request.body()
    rt = receiver.runtime(request.app.state)
    # the address the server saw: a forwarded-for header is not trusted (`pmapctl serve` reads none)
    source = request.client.host if request.client else ""
    answer = await receiver.receive(rt, integration_id, request.headers, body, source)
    return JSONResponse(answer.body, status_code=answer.status, headers=answer.headers)
