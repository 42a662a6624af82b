"""The console's routes: sign-in and sign-out, the page shells, their static files and ``/docs``.

Pages are shells drawn by their script from the JSON API; these routes only decide who may open which
shell (a page's role is checked here for the navigation and again by every API call it makes) and hand the
page its session's CSRF token. Answers are HTML, never cached (a page carries the CSRF token).
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.routing import compile_path

from pmap import __version__
from pmap.auth.models import Organization
from pmap.auth.sessions import CSRF_FIELD, ConsoleIdentity, check_csrf, cookie_name, identify, sign_in, sign_out
from pmap.console.assets import STATIC_DIR, TEMPLATES_DIR, integrity, vendor_installed, vendor_path
from pmap.console.pages import HOME, PAGES, Page, navigation
from pmap.core.db import transaction
from pmap.core.deps import DbSession, StateDep
from pmap.core.errors import AuthenticationRequired, PermissionDenied

log = logging.getLogger("pmap.console")
router = APIRouter(include_in_schema=False)

_templates = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(default=True),
                         trim_blocks=True, lstrip_blocks=True)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_STATIC_NAME = re.compile(r"^[a-z0-9_]+(/[a-z0-9_]+)*\.(js|css|svg)$")
_TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}


def _render(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(template).render(version=__version__, **context)
    return HTMLResponse(html, status_code=status, headers=NO_STORE)


def _identity(request: Request, session: DbSession, state: StateDep) -> ConsoleIdentity | None:
    cookie = request.cookies.get(cookie_name(state.settings))
    if not cookie:
        return None
    try:
        identity = identify(session, cookie, state.settings)
    except AuthenticationRequired:
        return None
    session.commit()
    return identity


SIGN_IN_COOKIE = "pmap_sign_in"
SIGN_IN_FIELD = "sign_in_token"


def _posted_from_our_page(request: Request, form_token: str) -> bool:
    """A sign-in form comes from PMAP's own sign-in page (guards against a cross-site login, which has no session
    whose CSRF token it could carry). A browser that says where a request comes from (Sec-Fetch-Site) is believed;
    otherwise the form must return the value the sign-in page set in both an HttpOnly, SameSite=Strict cookie and
    a hidden field (a double submit another site can neither read nor make the browser send). A client that is not
    a browser sends neither header nor cookie, and has no ambient credential to abuse."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    cookie = request.cookies.get(SIGN_IN_COOKIE)
    if cookie is not None or form_token:
        return cookie is not None and bool(form_token) and hmac.compare_digest(cookie.encode(), form_token.encode())
    return request.headers.get("origin") is None  # a browser always sends Origin with a form post


def _sign_in_form(status: int = 200, error: str | None = None, secure: bool = False) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = _render("sign_in.html", status=status, title="Sign in", error=error, sign_in_token=token)
    response.set_cookie(SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=secure, path="/sign-in",
                        max_age=3600)
    return response


@router.get("/")
def home(request: Request, session: DbSession, state: StateDep) -> Response:
    """The integrations list when signed in, else the sign-in page."""
    target = HOME if _identity(request, session, state) else "/sign-in"
    return RedirectResponse(target, status_code=303)


@router.get("/sign-in")
def sign_in_page(request: Request, session: DbSession, state: StateDep) -> Response:
    """The sign-in form (an API token)."""
    if _identity(request, session, state):
        return RedirectResponse(HOME, status_code=303)
    return _sign_in_form(secure=state.settings.production)


@router.post("/sign-in")
def sign_in_submit(request: Request, state: StateDep, token: Annotated[str, Form(max_length=512)] = "",
                   sign_in_token: Annotated[str, Form(alias=SIGN_IN_FIELD, max_length=128)] = "") -> Response:
    """Start a session for the token typed in; the cookie is HttpOnly, SameSite=Strict (and Secure in
    production). The token itself is never stored in the browser."""
    secure = state.settings.production
    if not _posted_from_our_page(request, sign_in_token):
        return _sign_in_form(403, "sign in from PMAP's own sign-in page", secure)
    if not token.strip():
        return _sign_in_form(401, "enter an API token", secure)
    try:
        with transaction(state.sessions) as tx:
            signed = sign_in(tx, token, state.settings)
    except AuthenticationRequired:
        log.warning("console sign-in refused: invalid, expired or revoked token")
        return _sign_in_form(401, "invalid, expired or revoked token", secure)
    response = RedirectResponse(HOME, status_code=303)
    response.delete_cookie(SIGN_IN_COOKIE, path="/sign-in", secure=secure, httponly=True, samesite="strict")
    response.set_cookie(cookie_name(state.settings), signed.cookie, httponly=True, samesite="strict",
                        secure=state.settings.production, path="/",
                        max_age=state.settings.console_session_hours * 3600)
    return response


@router.post("/sign-out")
def sign_out_submit(request: Request, state: StateDep,
                    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=128)] = "") -> Response:
    """End the session on the server (its CSRF token required) and clear the cookie."""
    name = cookie_name(state.settings)
    cookie = request.cookies.get(name)
    if cookie:
        with transaction(state.sessions) as tx:
            try:
                identity = identify(tx, cookie, state.settings)
            except AuthenticationRequired:
                identity = None  # already ended: clearing the cookie is all that is left
            if identity is not None:
                try:
                    check_csrf(identity, csrf_token)
                except PermissionDenied:
                    return _render("message.html", status=403, title="Sign out",
                                   message="Sign out from a PMAP page.")
                sign_out(tx, cookie)
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(name, path="/", secure=state.settings.production, httponly=True, samesite="strict")
    return response


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _page_route(page: Page) -> None:
    path_regex, _, _ = compile_path(page.path)

    def serve(request: Request, session: DbSession, state: StateDep) -> Response:
        identity = _identity(request, session, state)
        if identity is None:
            return RedirectResponse("/sign-in", status_code=303)
        principal = identity.principal
        org = session.get(Organization, principal.organization_id)
        context: dict[str, Any] = {"title": page.title, "nav": navigation(principal.role), "role": principal.role.value,
                   "token_name": principal.name, "organization": org.name if org else "",
                   "csrf_token": identity.csrf_token, "current": request.url.path}
        if principal.role.rank < page.role.rank:
            return _render("message.html", status=403, message=f"This page needs the {page.role.value} role.",
                           **context)
        match = path_regex.match(request.url.path)
        params = match.groupdict() if match else {}
        if not all(_is_uuid(value) for value in params.values()):
            # every path parameter is a record id: anything else ("..", a path) never reaches a page's API calls
            return _render("message.html", status=404, message="No such page.", **context)
        return _render("page.html", script=page.script, params=params, **context)

    serve.__name__ = f"page_{page.script}_{len(page.path)}"
    router.add_api_route(page.path, serve, methods=["GET"], response_class=HTMLResponse)


for _page in PAGES:
    _page_route(_page)


@router.get("/docs")
def api_docs() -> Response:
    """Swagger UI for ``/openapi.json``, served by PMAP (works with no internet)."""
    if not vendor_installed():
        return _render("message.html", status=503, title="API documentation",
                       message="Swagger UI is not installed here: run `make install` (npm ci in pmap/console/vendor).")
    return _render("docs.html", title="API documentation",
                   css_integrity=integrity("swagger-ui/swagger-ui.css"),
                   js_integrity=integrity("swagger-ui/swagger-ui-bundle.js"))


@router.get("/assets/console/{name:path}")
def console_asset(name: str) -> Response:
    """PMAP's own scripts and styles (revalidated on every use: a new release is seen at once)."""
    if not _STATIC_NAME.match(name) or ".." in name:
        return Response(status_code=404)
    path = STATIC_DIR / name
    if not path.is_file():
        return Response(status_code=404)
    return FileResponse(path, media_type=_TYPES[name.rsplit(".", 1)[1]], headers={"Cache-Control": "no-cache"})


@router.get("/assets/vendor/{name:path}")
def vendor_asset(name: str) -> Response:
    """A listed third-party file installed by ``npm ci``."""
    path = vendor_path(name)
    if path is None:
        return Response(status_code=404)
    media = _TYPES["js"] if name.endswith(".js") else _TYPES["css"]
    return FileResponse(path, media_type=media, headers={"Cache-Control": "public, max-age=86400"})
