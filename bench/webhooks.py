"""Issue 4 benchmark: verified, durably stored webhook deliveries per second on one worker.

One uvicorn server in this process (bench.common.served) runs the real PMAP app. The same app
instance gets one extra route, added here only, that reads the body and answers 202 without
verifying or storing anything: the floor. An async httpx client keeps 16 requests in flight and sends
the same number of distinct GitHub-signed deliveries to each, interleaved in rounds; the ratio
receiver/floor is printed, on PostgreSQL and then SQLite. Stored deliveries and their audit events are
counted afterwards.

    python -m bench.webhooks [--count 3000] [--concurrency 16] [--event push|issues] [--only postgresql|sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr
from sqlalchemy import func, select

from bench.common import pg_schema, served
from pmap.app import create_app
from pmap.audit.models import AuditEvent
from pmap.auth.service import get_or_create_org
from pmap.core.crypto import generate_key
from pmap.core.db import make_engine, make_session_factory, transaction
from pmap.core.settings import Settings
from pmap.credentials.keyring import load_keys
from pmap.credentials.service import WebhookSecrets, seal_webhook_secrets
from pmap.integrations.models import Integration
from pmap.migrations import upgrade
from pmap.webhooks.models import Outcome, WebhookDelivery
from pmap.webhooks.schemes import SCHEMES

WARMUP = 300


def _seed(settings: Settings) -> tuple[uuid.UUID, str]:
    """One GitHub integration with a webhook secret; returns its id and the secret."""
    upgrade(settings.resolved_database_url)
    engine = make_engine(settings.resolved_database_url)
    keys = load_keys(settings)
    secret = SCHEMES["github"].generate_secret()
    iid = uuid.uuid4()
    with transaction(make_session_factory(engine)) as s:
        org = get_or_create_org(s, "bench")
        s.add(Integration(
            id=iid, organization_id=org.id, name="github", vendor="github", category="cicd",
            connection={"base_url": "https://api.github.com", "repository": "acme/app"}, credential_fields=[],
            encrypted_webhook_secret=seal_webhook_secrets(keys, iid, WebhookSecrets(secret, None, None)),
            webhook_state={"configured": True},
        ))
    engine.dispose()
    return iid, secret


def _deliveries(secret: str, n: int, event: str = "push") -> list[tuple[bytes, dict[str, str]]]:
    """``n`` distinct GitHub deliveries (~1.5 KB each), signed ahead of time. ``push`` events are
    stored as processed; ``issues`` events also go through the processor (one ticket event each)."""
    scheme = SCHEMES["github"]
    out = []
    for i in range(n):
        body = (b'{"action":"edited","issue":{"number":%d,"state":"open","title":"%s"},'
                b'"repository":{"full_name":"acme/app"},"sender":{"login":"bench"},"padding":"%s"}'
                % (i, b"t" * 200, b"p" * 1200))
        headers = scheme.sign(body, secret, delivery_id=str(uuid.uuid4()), timestamp=int(time.time()))
        headers.update({"X-GitHub-Event": event, "Content-Type": "application/json"})
        out.append((body, headers))
    return out


async def _blast(url: str, requests: list[tuple[bytes, dict[str, str]]],
                 concurrency: int) -> tuple[float, dict[int, int]]:
    """Send every request with ``concurrency`` in flight; seconds taken and status counts."""
    statuses: dict[int, int] = {}
    queue = list(reversed(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60.0, trust_env=False) as client:
        async def worker() -> None:
            while queue:
                body, headers = queue.pop()
                r = await client.post(url, content=body, headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started, statuses


def _add_floor(app: FastAPI) -> None:
    """The bench-only endpoint: read the body, verify nothing, store nothing."""
    async def floor(integration_id: str, request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "accepted"}, status_code=202)

    app.add_api_route("/bench-floor/{integration_id}", floor, methods=["POST"])


def run(label: str, settings: Settings, count: int, concurrency: int, rounds: int,
        event: str = "push") -> dict[str, Any]:
    """Measure the floor and the receiver on one database; print and return the figures.

    The two are interleaved in ``rounds`` (floor, receiver, floor, ...) and their times summed, so a
    load change on the machine during the run weighs on both alike."""
    iid, secret = _seed(settings)
    app = create_app(settings)
    _add_floor(app)
    per_round = max(1, count // rounds)
    warm = _deliveries(secret, WARMUP)
    floor_reqs = _deliveries(secret, per_round * rounds, event)
    real_reqs = _deliveries(secret, per_round * rounds, event)
    floor_s = real_s = 0.0
    floor_st: dict[int, int] = {}
    real_st: dict[int, int] = {}
    with served(app) as base:
        asyncio.run(_blast(f"{base}/bench-floor/{iid}", warm, concurrency))
        asyncio.run(_blast(f"{base}/hooks/{iid}", warm, concurrency))
        app.state.webhook_runtime.processor.wait_idle(120)
        for r in range(rounds):
            chunk = slice(r * per_round, (r + 1) * per_round)
            seconds, statuses = asyncio.run(_blast(f"{base}/bench-floor/{iid}", floor_reqs[chunk], concurrency))
            floor_s += seconds
            _merge(floor_st, statuses)
            seconds, statuses = asyncio.run(_blast(f"{base}/hooks/{iid}", real_reqs[chunk], concurrency))
            real_s += seconds
            _merge(real_st, statuses)
        t0 = time.perf_counter()
        drained = app.state.webhook_runtime.processor.wait_idle(300)
        drain_s = time.perf_counter() - t0
    engine = make_engine(settings.resolved_database_url)
    with make_session_factory(engine)() as s:
        stored = s.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.outcome.in_([Outcome.ACCEPTED.value, Outcome.PROCESSED.value])))
        processed = s.scalar(select(func.count()).select_from(WebhookDelivery).where(
            WebhookDelivery.outcome == Outcome.PROCESSED.value))
        audited = s.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.purpose == "webhook_verification"))
    engine.dispose()
    n = per_round * rounds
    floor_rps, real_rps = n / floor_s, n / real_s
    print(f"{label:<11} floor {floor_rps:7.0f} req/s {floor_st}   receiver {real_rps:7.0f} deliveries/s {real_st}   "
          f"ratio {real_rps / floor_rps:5.2f}")
    print(f"{'':<11} stored {stored} (incl. {WARMUP} warm-up), processed {processed} "
          f"({'drained' if drained else 'NOT drained'} {drain_s:.2f} s after the last answer), "
          f"decrypt audit events {audited}")
    return {"floor_rps": floor_rps, "receiver_rps": real_rps, "ratio": real_rps / floor_rps}


def _merge(into: dict[int, int], more: dict[int, int]) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def main() -> None:
    """Run on PostgreSQL, then SQLite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=10, help="floor/receiver alternations")
    parser.add_argument("--only", choices=["postgresql", "sqlite"], default=None)
    parser.add_argument("--event", choices=["push", "issues"], default="push",
                        help="push: stored as processed; issues: also processed into ticket events")
    args = parser.parse_args()
    print(f"webhook receiver: {args.count} GitHub-signed '{args.event}' deliveries, {args.concurrency} in flight, "
          f"one uvicorn worker; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    key = generate_key()

    def settings(url: str, data_dir: Path) -> Settings:
        # the rate limit is lifted: the benchmark measures throughput, not the limiter
        return Settings(database_url=url, data_dir=data_dir, platform_key=SecretStr(key), bootstrap_admin_token=None,
                        log_level="WARNING", webhook_rate_per_minute=10**9)

    with tempfile.TemporaryDirectory(prefix="pmap-bench-") as tmp:
        if args.only in (None, "postgresql"):
            with pg_schema() as url:
                run("PostgreSQL", settings(url, Path(tmp) / "pg"), args.count, args.concurrency, args.rounds,
                    args.event)
        if args.only in (None, "sqlite"):
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            run("SQLite", settings(url, Path(tmp) / "lite"), args.count, args.concurrency, args.rounds, args.event)


if __name__ == "__main__":
    main()
