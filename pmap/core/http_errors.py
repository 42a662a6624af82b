"""The one JSON error body, the exception handlers that produce it, and request guards.

Every error answer is ``{"error": {"code", "message", "fields": [{"field", "reason"}], "correlation_id"}}``.
Validation errors name the field and the reason and never echo the submitted value.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError, NoResultFound
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pmap.core.db import is_busy, is_foreign_key_violation
from pmap.core.errors import Conflict, FieldProblem, NotFound, PmapError, ServiceBusy
from pmap.core.logs import correlation_id
from pmap.core.redaction import scrub
from pmap.core.text import CONTROL_CHARS, DECEPTIVE_CHARS

log = logging.getLogger("pmap.errors")
_UNSHOWABLE = re.compile(f"{CONTROL_CHARS.pattern}|{DECEPTIVE_CHARS.pattern}")


def error_body(code: str, message: str, fields: list[FieldProblem] | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON error document."""
    body: dict[str, Any] = {
        "code": code,
        "message": message,
        "fields": [{"field": f.field, "reason": f.reason} for f in (fields or [])],
        "correlation_id": correlation_id.get(),
    }
    body.update(extra)
    return {"error": body}


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def _reason(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a known field"
    msg = str(err.get("msg", "is invalid"))
    # pydantic prefixes custom errors with "Value error, "; keep the reason only
    return re.sub(r"^(Value error|Assertion failed), ", "", msg)


def validation_problems(errors: Sequence[Mapping[str, Any]]) -> list[FieldProblem]:
    """Field problems from pydantic errors, without the submitted values."""
    return [FieldProblem(_field_path(tuple(e.get("loc", ()))), _reason(e)) for e in errors]


def install_error_handlers(app: FastAPI) -> None:
    """Route every error, expected or not, through the one error body."""

    @app.exception_handler(PmapError)
    async def _pmap_error(_request: Request, exc: PmapError) -> JSONResponse:
        return pmap_error_response(exc)

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        # a write that found the lock taken (SQLite's one writer) wrote nothing: the caller retries
        if is_busy(exc):
            log.warning("a write found the database busy past its timeout; answered 503")
            return pmap_error_response(ServiceBusy())
        return _internal_error(exc)

    # a row that vanished under a request (another request deleted it between the read and the write):
    # an UPDATE that matched nothing, an expired object gone, a locking re-read finding nothing
    @app.exception_handler(StaleDataError)
    @app.exception_handler(ObjectDeletedError)
    @app.exception_handler(NoResultFound)
    async def _vanished(request: Request, _exc: Exception) -> JSONResponse:
        return await _pmap_error(request, NotFound("not found: it was deleted while this request ran"))

    # a row written for a parent deleted meanwhile (findings imported into an integration being deleted)
    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        if not is_foreign_key_violation(exc):
            return _internal_error(exc)  # any other integrity failure is a fault, like any other database error
        return await _pmap_error(request, Conflict("a record this request writes to was deleted while it ran; "
                                                   "nothing was written"))

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if any(e.get("type") == "json_invalid" for e in errors):
            return JSONResponse(error_body("malformed_json", "the request body is not valid JSON"), status_code=400)
        return JSONResponse(
            error_body("validation_failed", "the request is invalid", validation_problems(errors)), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        detail: object = exc.detail  # typed str, but FastAPI's HTTPException takes any detail
        message = detail if isinstance(detail, str) else "request failed"
        if exc.status_code in _ROUTING and message == HTTPStatus(exc.status_code).phrase:
            # the router's own answer (its detail is the bare phrase): say what it did not find
            message = _ROUTING[exc.status_code].format(method=shown(request.method), path=shown(request.url.path))
        return JSONResponse(error_body(code, scrub(message)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _internal_error(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "authentication_required"}
#: the router's answers, naming the method and the path (never the query string: it may hold a secret)
_ROUTING = {404: "no route for {method} {path}", 405: "{method} is not allowed on {path}"}
_SHOWN_CHARS = 200


def shown(text: str) -> str:
    """``text`` (a request path or method) fit to quote in a message: control, invisible and
    direction-changing characters escaped (``\\n``, ``\\u202e``), cut to 200 characters."""
    escaped = _UNSHOWABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)
    return escaped if len(escaped) <= _SHOWN_CHARS else escaped[:_SHOWN_CHARS - 1] + "…"


def pmap_error_response(exc: PmapError) -> JSONResponse:
    """The answer to a :class:`PmapError`: its status, the error body, ``Retry-After`` when it names one."""
    extra = dict(exc.details)
    if getattr(exc, "step", None):
        extra["step"] = exc.step  # type: ignore[attr-defined]
    return JSONResponse(
        error_body(exc.code, scrub(exc.message), exc.fields, **extra), status_code=exc.status,
        headers={"Retry-After": str(exc.details["retry_after"])} if "retry_after" in exc.details else None,
    )


def _internal_error(exc: BaseException) -> JSONResponse:
    log.error("unexpected fault", exc_info=exc)  # the formatter scrubs the traceback
    return JSONResponse(error_body("internal_error", "internal error; quote the correlation id"), status_code=500)


class RequestContextMiddleware:
    """Gives each request a correlation id (echoed as ``X-Correlation-ID``) and caps body sizes.

    The cap is checked on ``Content-Length`` up front and on the bytes actually received, so a
    chunked upload cannot get around it. ``limits`` maps a path regex to its cap; the first match wins.
    """

    def __init__(self, app: ASGIApp, *, default_limit: int, limits: list[tuple[str, int]]) -> None:
        self.app = app
        self.default_limit = default_limit
        self.limits = [(re.compile(p), n) for p, n in limits]

    def _limit_for(self, path: str) -> int:
        for pattern, n in self.limits:
            if pattern.match(path):
                return n
        return self.default_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cid = uuid.uuid4().hex
        token = correlation_id.set(cid)
        limit = self._limit_for(scope.get("path", ""))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"x-correlation-id", cid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if _has_nul(scope):
                # PostgreSQL refuses NUL in text: refuse it at the door rather than in every filter
                await _send_json(send_with_id, 400, error_body(
                    "bad_request", "the URL must not contain NUL characters (%00)"))
                return
            declared = None
            for name, value in scope.get("headers", []):
                if name == b"content-length":
                    try:
                        declared = int(value)
                    except ValueError:
                        declared = None
            if declared is not None and declared > limit:
                await _too_large(send_with_id, limit)
                return
            received = 0
            answered = False

            async def guarded_receive() -> Message:
                nonlocal received, answered
                if answered:
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        # answer now and make the app see a disconnect; whatever it sends next is dropped
                        await _too_large(send_with_id, limit)
                        answered = True
                        return {"type": "http.disconnect"}
                return message

            started = False

            async def guarded_send(message: Message) -> None:
                nonlocal started
                if not answered:
                    started = started or message["type"] == "http.response.start"
                    await send_with_id(message)

            try:
                await self.app(scope, guarded_receive, guarded_send)
            except ClientDisconnect:  # the client left before its body arrived: nobody to answer
                log.info("client disconnected before the request body was read")
            except Exception as exc:  # an unexpected fault: answer here, while the correlation id is set
                log.error("unexpected fault", exc_info=exc)  # the formatter scrubs the traceback
                if not started and not answered:
                    await _send_json(send_with_id, 500,
                                     error_body("internal_error", "internal error; quote the correlation id"))
        finally:
            correlation_id.reset(token)


def _has_nul(scope: Scope) -> bool:
    """True when the path or query string carries a NUL, raw or percent-encoded."""
    raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
    query = scope.get("query_string", b"")
    return any(b"\x00" in part or b"%00" in part for part in (raw_path, query))


async def _send_json(send: Send, status: int, doc: dict[str, Any]) -> None:
    body = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _too_large(send: Send, limit: int) -> None:
    await _send_json(send, 413, error_body("payload_too_large", f"the request body exceeds {limit} bytes"))
