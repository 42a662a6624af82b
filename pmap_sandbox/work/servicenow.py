"""ServiceNow Table API (``/api/now/table/{table}``) over HTTP Basic ``username:password``.

Every answer is wrapped: ``{"result": ...}`` on success, ``{"error": {"message", "detail"},
"status": "failure"}`` on failure. Tables: ``sys_user``, ``sys_user_role``, ``sys_user_has_role``
(role grants, for least-privilege checks: ``itil`` is what incident work needs, ``admin`` is
over-privilege) and ``incident``. ACLs follow the scenario: ``noperm`` holds no ``itil``, reads
no incidents (an ACL filters rows) and writes none (403). The vendor-specific marker ``security``
in the password grants ``security_admin`` besides the scenario's roles (the generic ``admin`` marker
cannot spell it: ``security_admin`` contains ``admin``). Resolving or closing an incident without
``close_code`` and ``close_notes`` fails on the default data policy, as on a real instance. An
incident's ``priority`` is read-only: the base priority lookup rules derive it from ``impact`` and
``urgency`` on every insert and update.

OAuth 2.0 client credentials: ``POST /oauth_token.do`` issues Bearer tokens (``expires_in`` 1799, as an
instance's default lifespan) to any client whose secret carries no refusing marker; a refused client
gets ServiceNow's ``{"error_description": "access_denied", "error": "server_error"}`` with 401. Requests
with the token run as the client's OAuth Application User ``oauth.app.<client_id>``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from pmap_sandbox.work import _oauth
from pmap_sandbox.work import servicenow_data as data
from pmap_sandbox.work._base import (
    Caller,
    Dialect,
    Reply,
    add_fallback,
    admit,
    base_url,
    int_param,
    json_response,
    make_router,
    parse_basic,
    read_json,
    state,
)

KEY = "servicenow"
RESOLVED_STATES = {"6", "7"}
SECURITY = "security"  # vendor-specific marker (in the password): the user also holds security_admin
TOKEN_TTL = 1799


def sn_error(status: int, message: str, detail: str | None, headers: dict[str, str] | None = None) -> Response:
    """ServiceNow's REST error body."""
    return json_response(status, {"error": {"message": message, "detail": detail}, "status": "failure"}, headers)


class ServiceNowDialect(Dialect):
    def missing(self, request: Request) -> Response:
        return sn_error(401, "User Not Authenticated", "Required to provide Auth information",
                        {"WWW-Authenticate": 'BASIC realm="Service-now"'})

    def echo(self, request: Request, echoed: str) -> Response:
        return sn_error(401, "User Not Authenticated", f"Authentication failed for {echoed}")

    def down(self, request: Request) -> Response:
        return sn_error(503, "Service Unavailable", "The instance is temporarily unavailable")

    def ratelimited(self, request: Request) -> Response:
        return sn_error(429, "Rate limit exceeded", "Too many requests for this user; retry later",
                        {"X-RateLimit-Limit": "100", "X-RateLimit-Rule": "sandbox-default"})


DIALECT = ServiceNowDialect()


def token_error(status: int, error: str, description: str) -> Response:
    """The token endpoint's error body (ServiceNow names every refusal access_denied)."""
    del description
    if status == 401:
        return json_response(401, {"error_description": "access_denied", "error": "server_error"})
    return json_response(status, {"error_description": error, "error": "server_error"})


async def authenticate(request: Request) -> tuple[Caller, data.Instance, data.Record]:
    """The caller, the instance and the caller's ``sys_user`` row; or raise the 401."""
    bearer = _oauth.bearer_caller(request, KEY, DIALECT.missing)
    if bearer is not None:
        caller = bearer
    else:
        basic = parse_basic(request.headers.get("authorization"))
        if basic is None or not basic[0]:
            raise Reply(DIALECT.missing(request))
        caller = await admit(KEY, DIALECT, request, basic[0], basic[1], checked=[basic[0]])
    instance: data.Instance = state(request, KEY, data.Instance)
    user = instance.ensure_user(caller.principal, admin=caller.admin, noperm=caller.noperm,
                                security_admin=SECURITY in caller.secret.lower())
    return caller, instance, user


def _table(instance: data.Instance, table: str) -> dict[str, data.Record]:
    if table not in instance.tables:
        raise Reply(sn_error(400, f"Invalid table {table}", None))
    return instance.tables[table]


def _render(request: Request, instance: data.Instance, table: str, record: data.Record) -> dict[str, Any]:
    """A record as the Table API shows it under ``sysparm_display_value`` and ``sysparm_fields``."""
    mode = request.query_params.get("sysparm_display_value", "false").lower()
    no_link = request.query_params.get("sysparm_exclude_reference_link", "false").lower() == "true"
    wanted = [f.strip() for f in request.query_params.get("sysparm_fields", "").split(",") if f.strip()]
    root = str(request.base_url).rstrip("/") + f"/{KEY}/api/now/table"
    refs = data.REFERENCES.get(table, {})
    out: dict[str, Any] = {}
    for field in wanted or list(record):
        value = record.get(field, "")
        display = data.INCIDENT_STATES.get(value, value) if table == "incident" and field == "state" else value
        if field in refs and value:
            display = instance.display(refs[field], value)
            ref: dict[str, str] = {} if no_link else {"link": f"{root}/{refs[field]}/{value}"}
            if mode == "true":
                out[field] = {"display_value": display, **ref}
            elif mode == "all":
                out[field] = {"display_value": display, **ref, "value": value}
            else:
                out[field] = {**ref, "value": value}
        elif mode == "true":
            out[field] = display
        elif mode == "all":
            out[field] = {"display_value": display, "value": value}
        else:
            out[field] = value
    return out


def _readable(caller: Caller, table: str) -> bool:
    return not (caller.noperm and table == "incident")


def _close_policy(values: dict[str, str]) -> None:
    """The default data policy: a resolved or closed incident needs a resolution code and notes."""
    if values.get("state") in RESOLVED_STATES and (not values.get("close_code") or not values.get("close_notes")):
        raise Reply(sn_error(403, "Operation Failed", "Data Policy Exception: \n\tThe following fields are "
                                                     "mandatory: Resolution code, Resolution notes\n"))


def _apply_update(instance: data.Instance, record: data.Record, values: dict[str, Any], user: data.Record) -> None:
    """Merge client values into an incident, enforcing the close-info data policy."""
    merged = {**record, **{k: data.as_str(v) for k, v in values.items() if k in data.INCIDENT_FIELDS}}
    _close_policy(merged)
    if merged["state"] == "6" and record["state"] != "6":
        merged.update(resolved_at=data.stamp(), resolved_by=user["sys_id"])
    if merged["state"] == "7":
        merged.update(closed_at=data.stamp(), closed_by=user["sys_id"], active="false")
    merged.update(incident_state=merged["state"], priority=data.priority_of(merged), work_notes="", comments="",
                  sys_updated_on=data.stamp(), sys_updated_by=user["user_name"],
                  sys_mod_count=str(int(record["sys_mod_count"]) + 1))
    record.update(merged)


def build_router() -> APIRouter:
    """The ServiceNow router."""
    router = make_router(KEY)
    prefix = "/api/now/table/{table}"

    @router.post("/oauth_token.do")
    async def oauth_token(request: Request) -> Response:
        return await _oauth.issue(request, KEY, token_error, lambda client_id: f"oauth.app.{client_id}", TOKEN_TTL)

    @router.get(prefix)
    async def list_records(request: Request, table: str) -> Response:
        caller, instance, _ = await authenticate(request)
        _table(instance, table)
        rows = instance.query(table, request.query_params.get("sysparm_query", "")) \
            if _readable(caller, table) else []
        offset = int_param(request.query_params.get("sysparm_offset"), 0, low=0, high=1_000_000)
        limit = int_param(request.query_params.get("sysparm_limit"), 10_000, high=10_000)
        page = rows[offset:offset + limit]
        headers = {"X-Total-Count": str(len(rows))}
        if offset + limit < len(rows):
            nxt = request.url.include_query_params(sysparm_offset=offset + limit, sysparm_limit=limit)
            headers["Link"] = f'<{nxt}>;rel="next"'
        return json_response(200, {"result": [_render(request, instance, table, r) for r in page]}, headers)

    @router.get(prefix + "/{sid}")
    async def get_record(request: Request, table: str, sid: str) -> Response:
        caller, instance, _ = await authenticate(request)
        record = _table(instance, table).get(sid)
        if record is None or not _readable(caller, table):
            return sn_error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        return json_response(200, {"result": _render(request, instance, table, record)})

    @router.post(prefix)
    async def create_record(request: Request, table: str) -> Response:
        caller, instance, user = await authenticate(request)
        _table(instance, table)
        values = await read_json(request, lambda reason: sn_error(400, "Exception while reading request",
                                                                  "The payload is not valid JSON."))
        if not isinstance(values, dict):
            return sn_error(400, "Exception while reading request", "The payload is not valid JSON.")
        if table != "incident" or caller.noperm:
            return sn_error(403, "Operation Failed", "ACL Exception Insert Failed due to security constraints")
        _close_policy({k: data.as_str(v) for k, v in values.items()})
        record = instance.insert_incident(values, caller.principal, user["sys_id"])
        location = f"{base_url(request, KEY)}/api/now/table/incident/{record['sys_id']}"
        return json_response(201, {"result": _render(request, instance, table, record)}, {"Location": location})

    async def update_record(request: Request, table: str, sid: str) -> Response:
        caller, instance, user = await authenticate(request)
        record = _table(instance, table).get(sid)
        if record is None or not _readable(caller, table):
            return sn_error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        values = await read_json(request, lambda reason: sn_error(400, "Exception while reading request",
                                                                  "The payload is not valid JSON."))
        if not isinstance(values, dict):
            return sn_error(400, "Exception while reading request", "The payload is not valid JSON.")
        if table != "incident" or caller.noperm:
            return sn_error(403, "Operation Failed", "ACL Exception Update Failed due to security constraints")
        _apply_update(instance, record, values, user)
        return json_response(200, {"result": _render(request, instance, table, record)})

    router.add_api_route(prefix + "/{sid}", update_record, methods=["PATCH", "PUT"])

    @router.delete(prefix + "/{sid}")
    async def delete_record(request: Request, table: str, sid: str) -> Response:
        caller, instance, _ = await authenticate(request)
        rows = _table(instance, table)
        if sid not in rows or not _readable(caller, table):
            return sn_error(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
        if not caller.admin:
            return sn_error(403, "Operation Failed", "ACL Exception Delete Failed due to security constraints")
        del rows[sid]
        return Response(status_code=204)

    add_fallback(router, lambda request: sn_error(400, "Requested URI does not represent any resource",
                                                  None))
    return router
