"""The sandbox server: one FastAPI app mounting every simulated vendor, run by uvicorn on loopback.

``build_app()`` mounts the scanner and work-tool routers plus the control routes under
``/_sandbox``; :class:`SandboxServer` runs it in a background thread on a free port (optionally
HTTPS with a throw-away self-signed certificate); :func:`run` serves it in the foreground for
``pmapctl sandbox``. Nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from pmap_sandbox import scenarios, signing

LOOPBACK = "127.0.0.1"
START_TIMEOUT_SECONDS = 10.0


class Delivery(BaseModel):
    """Body of ``POST /_sandbox/deliver/{vendor_key}``."""

    url: str
    secret: str = Field(description="HMAC secret or token; Azure DevOps: 'user:password'")
    event: str = "ping"
    payload: Any = Field(default_factory=dict)
    content_type: str = "json"
    delivery_id: str | None = None
    verify: bool = True


def _default_parts() -> tuple[list[APIRouter], dict[str, dict[str, Any]]]:
    from pmap_sandbox import scanners, work

    return [*scanners.ROUTERS, *work.ROUTERS], _merge(scanners.SANDBOX_VENDORS, work.SANDBOX_VENDORS)


def _merge(*parts: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for part in parts:
        for key, descriptor in part.items():
            if key in merged:
                raise ValueError(f"sandbox vendor key {key!r} is defined twice")
            merged[key] = descriptor
    return merged


def _control_router(vendors: Mapping[str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(prefix="/_sandbox", tags=["sandbox"])

    @router.get("/vendors")
    async def list_vendors(request: Request) -> dict[str, dict[str, Any]]:
        """Every simulated vendor: its descriptor, the PMAP ``vendor`` type it simulates, and an example
        integration: ``connection`` (with the ``base_url``) and ``valid_credentials``, each valid for
        that vendor type's schemas."""
        root = str(request.base_url).rstrip("/")
        return {key: {**d, "vendor": d.get("vendor", key), "base_url": root + d["base_path"],
                      "connection": {"base_url": root + d["base_path"], **d.get("connection", {})}}
                for key, d in sorted(vendors.items())}

    @router.post("/latency")
    async def set_latency(request: Request, body: Latency) -> dict[str, float]:
        """Answer every vendor request ``seconds`` late (a far or busy vendor; the event loop stays free, so
        concurrent requests wait side by side, as they would on a real vendor). 0 turns it off."""
        request.app.state.latency = body.seconds
        return {"seconds": body.seconds}

    @router.post("/deliver/{vendor_key}")
    async def deliver(vendor_key: str, body: Delivery) -> JSONResponse:
        """Send one delivery signed with ``vendor_key``'s scheme; report the receiver's status."""
        scheme = signing.scheme_for(vendor_key)
        try:
            response = await signing.deliver(
                body.url,
                scheme,
                body.secret,
                body.payload,
                body.event,
                delivery_id=body.delivery_id,
                verify=body.verify,
                content_type=body.content_type,
            )
        except httpx.HTTPError as exc:
            return JSONResponse({"error": f"delivery failed: {type(exc).__name__}", "scheme": scheme}, status_code=502)
        return JSONResponse({"status": response.status_code, "scheme": scheme, "body": response.text[:2000]})

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, bool]:
        """Forget rate-limit counters and every vendor's in-memory state."""
        scenarios.reset_ratelimits()
        request.app.state.sandbox_store = {}
        return {"reset": True}

    return router


def build_app(
    routers: Sequence[APIRouter] | None = None, vendors: Mapping[str, dict[str, Any]] | None = None
) -> FastAPI:
    """The sandbox app; by default every scanner and work-tool vendor (pass both to mount a subset)."""
    if routers is None or vendors is None:
        default_routers, default_vendors = _default_parts()
        routers = default_routers if routers is None else routers
        vendors = default_vendors if vendors is None else vendors
    app = FastAPI(
        title="PMAP vendor sandbox", docs_url="/_sandbox/docs", redoc_url=None, openapi_url="/_sandbox/openapi.json"
    )
    app.state.sandbox_store = {}
    for router in routers:
        app.include_router(router)
    app.include_router(_control_router(vendors))
    app.state.latency = 0.0
    app.add_middleware(_Latency, app_state=app.state)
    app.add_middleware(_QuietDisconnects)
    return app


class Latency(BaseModel):
    """Body of ``POST /_sandbox/latency``."""

    seconds: float = Field(ge=0, le=60)


class _Latency:
    """Sleeps ``app.state.latency`` seconds before each vendor request (not the sandbox's own ``/_sandbox``)."""

    def __init__(self, app: Any, app_state: Any) -> None:
        self.app, self.state = app, app_state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        delay = float(getattr(self.state, "latency", 0.0) or 0.0)
        if delay and scope.get("type") == "http" and not str(scope.get("path", "")).startswith("/_sandbox"):
            await asyncio.sleep(delay)
        await self.app(scope, receive, send)


class _QuietDisconnects:
    """A client that gave up (PMAP's timeout against the ``slow`` marker) is normal here: no traceback."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from starlette.requests import ClientDisconnect

        try:
            await self.app(scope, receive, send)
        except ClientDisconnect:
            return


# ---- TLS -----------------------------------------------------------------------------------------


def self_signed_pem(hosts: Sequence[str] = (LOOPBACK, "localhost")) -> tuple[bytes, bytes]:
    """A fresh (certificate PEM, private key PEM) pair valid for ``hosts`` for one day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PMAP sandbox")])
    alt: list[x509.GeneralName] = []
    for host in hosts:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        # CA:true so the same PEM can be handed to a client as its trusted CA bundle
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@contextmanager
def _tls_files(host: str) -> Iterator[tuple[str, str, str]]:
    cert_pem, key_pem = self_signed_pem(tuple(dict.fromkeys((host, LOOPBACK, "localhost"))))
    with tempfile.TemporaryDirectory(prefix="pmap-sandbox-tls-") as tmp:
        cert_path, key_path = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_path.write_bytes(cert_pem)
        key_path.write_bytes(key_pem)
        key_path.chmod(0o600)
        yield str(cert_path), str(key_path), cert_pem.decode()


# ---- running -------------------------------------------------------------------------------------


class SandboxServer:
    """Runs the sandbox on ``127.0.0.1`` and a free port in a background thread (a context manager)."""

    def __init__(self, app: FastAPI | None = None, *, tls: bool = False, host: str = LOOPBACK) -> None:
        self.app = app if app is not None else build_app()
        self.tls = tls
        self.host = host
        self.port: int | None = None
        self.ca_pem: str | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._tls_cm: Any = None

    @property
    def base_url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` once started."""
        if self.port is None:
            raise RuntimeError("sandbox server is not running")
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def url(self, vendor_key: str, descriptors: Mapping[str, dict[str, Any]] | None = None) -> str:
        """The base URL of one vendor (its ``base_path`` appended when descriptors are given)."""
        path = str((descriptors or {}).get(vendor_key, {}).get("base_path", f"/{vendor_key}"))
        return self.base_url + path

    def start(self) -> SandboxServer:
        """Bind a free port, start serving and wait until uvicorn accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, 0))
        self.port = sock.getsockname()[1]
        cert_path: str | None = None
        key_path: str | None = None
        if self.tls:
            self._tls_cm = _tls_files(self.host)
            cert_path, key_path, self.ca_pem = self._tls_cm.__enter__()
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=cert_path,
            ssl_keyfile=key_path,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"pmap-sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("sandbox server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread, and remove the TLS files."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT_SECONDS)
        if self._tls_cm is not None:
            self._tls_cm.__exit__(None, None, None)
            self._tls_cm = None
        self._server = self._thread = None
        self.port = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run(host: str = LOOPBACK, port: int = 8900, tls: bool = False) -> None:
    """Serve the sandbox in the foreground until interrupted (``pmapctl sandbox``)."""
    app = build_app()
    scheme = "https" if tls else "http"
    # an interactive entry point: tell the user where to point PMAP before uvicorn's own lines
    print(f"PMAP sandbox on {scheme}://{host}:{port} (vendors: /_sandbox/vendors)", file=sys.stderr, flush=True)
    if not tls:
        uvicorn.run(app, host=host, port=port, log_level="info", lifespan="off")
        return
    with _tls_files(host) as (cert_path, key_path, _):
        uvicorn.run(
            app, host=host, port=port, log_level="info", lifespan="off", ssl_certfile=cert_path, ssl_keyfile=key_path
        )
