"""The authenticated principal as Annotated dependencies, one alias per minimum role."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request

from pmap.auth.principal import Principal, Role
from pmap.auth.service import authenticate
from pmap.auth.sessions import CSRF_HEADER, check_csrf, cookie_name, identify
from pmap.core.audit_vocabulary import AuditAction, AuditOutcome
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import AuthenticationRequired, PermissionDenied
from pmap.core.state import AppState

#: methods that change nothing: a console session sends them without its CSRF token
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_principal(request: Request, session: DbSession, state: StateDep) -> Principal:
    """The principal of the request's ``Authorization: Bearer`` token or, without one, of its web console
    session cookie, whose state-changing requests must also carry the session's CSRF token (401 without a
    valid token or session, 403 without the CSRF token)."""
    header = request.headers.get("authorization", "")
    cookie = request.cookies.get(cookie_name(state.settings))
    if not header and cookie:
        identity = identify(session, cookie, state.settings)
        if request.method not in SAFE_METHODS:
            check_csrf(identity, request.headers.get(CSRF_HEADER))
        session.commit()
        return identity.principal
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("authentication required: send a bearer token in the Authorization header")
    principal = authenticate(session, token.strip())
    # end the read transaction: a request that then waits on a vendor must not hold a pooled connection
    session.commit()
    return principal


def _at_least(role: Role) -> Callable[[Principal, AppState, Request], Principal]:
    def dependency(principal: Annotated[Principal, Depends(current_principal)], state: StateDep,
                   request: Request) -> Principal:
        try:
            principal.require(role)
        except PermissionDenied:
            # a token trying what its role may not (an operator revealing a secret) is worth a record
            state.audit.record(actor=principal.actor, action=AuditAction.ACCESS_DENIED, integration_id=None,
                               purpose=None, outcome=AuditOutcome.FAILURE,
                               detail={"method": request.method, "path": request.url.path, "needs": role.value})
            raise
        return principal

    dependency.__name__ = f"require_{role.value}"
    return dependency


_require_operator = _at_least(Role.OPERATOR)  # one callable: FastAPI runs it once per request however often named

Viewer = Annotated[Principal, Depends(_at_least(Role.VIEWER))]
Operator = Annotated[Principal, Depends(_require_operator)]
Admin = Annotated[Principal, Depends(_at_least(Role.ADMIN))]


async def _hold_outbound_slot(principal: Operator, state: StateDep) -> AsyncIterator[None]:
    """Admit one outbound operation of the caller's organization (429 beyond the bound), for the whole
    endpoint. Async, so a refused request never takes a worker thread for the endpoint."""
    with state.outbound.admitted(principal.organization_id):
        yield


#: Route dependency of every endpoint that calls a vendor (connection tests, permission checks, webhook
#: registration and auto-setup, tickets); "function" scope: the slot is released as soon as the endpoint returns.
OUTBOUND = Depends(_hold_outbound_slot, scope="function")
#: Their OpenAPI answer beyond the bound.
OUTBOUND_RESPONSES: dict[int | str, dict[str, object]] = {
    429: {"description": "too many outbound operations in progress (per organization or in total); see Retry-After"}}
