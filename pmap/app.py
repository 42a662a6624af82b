"""The FastAPI application: start-up checks, routers, error handling."""

from __future__ import annotations

import dataclasses
import functools
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from pmap import __version__
from pmap.audit.api import router as audit_router
from pmap.audit.chain import AuditChain, AuditStream
from pmap.audit.service import AuditLog
from pmap.auth.api import router as auth_router
from pmap.auth.service import ensure_bootstrap_admin
from pmap.connectors.api import router as connectors_router
from pmap.connectors.catalog import connector_types, identifier_fields
from pmap.console.api import router as console_router
from pmap.core.concurrency import WORKER_THREADS, OutboundSlots
from pmap.core.db import make_engine, make_session_factory, transaction, utcnow
from pmap.core.errors import ConfigurationError, Conflict
from pmap.core.files import private_directory
from pmap.core.health import Bounded, Readiness, database_check, redis_check
from pmap.core.http_errors import RequestContextMiddleware, install_error_handlers
from pmap.core.logs import configure_logging
from pmap.core.metrics import CONTENT_TYPE, Delivery, Metrics, MetricsMiddleware, read_sync_lag
from pmap.core.query import KnownQueryOnly
from pmap.core.seams import Purpose
from pmap.core.security_headers import SecurityHeadersMiddleware
from pmap.core.settings import Settings, get_settings
from pmap.core.state import AppState
from pmap.credentials.keyring import load_keys
from pmap.credentials.rotation import announced_kek
from pmap.credentials.service import CredentialResolver, holds_sealed_data, keyring_usable, verify_keyring_canary
from pmap.findings.api import router as findings_router
from pmap.findings.formats.base import on_parser_fault
from pmap.findings.formats.registry import report_formats
from pmap.findings.jobs import JOB_KINDS, KIND_SCAN, KIND_SYNC, KIND_TICKET_RECONCILE, JobCall, JobRunner, start_jobs
from pmap.integrations.api import router as integrations_router
from pmap.jobs.broker import CeleryDispatcher, celery_app, redacted
from pmap.jobs.dispatch import Again, Dispatcher, Requeue
from pmap.jobs.lease import orphans
from pmap.migrations import current_revision, head_revision
from pmap.scans.api import router as scans_router
from pmap.scans.service import SCAN_WORKERS, scan_handler
from pmap.schedules.service import KIND_WEBHOOK_ROTATION, Scheduler
from pmap.sync.api import router as sync_router
from pmap.sync.service import scheduled_sync, sync_handler, sync_of_run
from pmap.tickets.api import router as tickets_router
from pmap.tickets.reconcile import reconcile_tickets, system_actor, trackers_due
from pmap.tickets.reopen import reopen_after_import
from pmap.webhooks import receiver
from pmap.webhooks.api import receiver_router
from pmap.webhooks.api import router as webhooks_router
from pmap.webhooks.processor import Processor
from pmap.webhooks.rotation import scheduled_rotation
from pmap.webhooks.service import scheme_key
from pmap.webhooks.triggers import RunFinished

log = logging.getLogger("pmap.app")

API_PREFIX = "/api/v1"
RECEIVER_ROUTE = "/hooks/{integration_id}"


def new_metrics() -> Metrics:
    """The metrics of one app, with the label sets this build bounds them to."""
    metrics = Metrics(vendors=connector_types(), purposes=[p.value for p in Purpose], job_kinds=list(JOB_KINDS),
                      formats=report_formats())
    on_parser_fault(metrics.parser_fault)  # from now on, while this app's metrics live
    return metrics


def start(settings: Settings, metrics: Metrics | None = None) -> AppState:
    """Make the data directory private, open the database, check its schema, load the keys and prove each opens
    what it sealed (the canaries; with an HSM, an unwrap inside the token),
    seed the bootstrap token."""
    private_directory(settings.data_dir)
    engine = make_engine(settings.resolved_database_url, busy_timeout=settings.sqlite_busy_timeout)
    at, head = current_revision(engine), head_revision()
    if at != head:
        engine.dispose()
        raise ConfigurationError(
            f"the database schema is at {at or 'nothing'}, this build needs {head}: run `pmapctl db upgrade`"
        )
    sessions = make_session_factory(engine)

    def sealed_data_exists() -> bool:
        with sessions() as session:
            return holds_sealed_data(session)

    try:
        keys = load_keys(settings, sealed_data_exists=sealed_data_exists)
        with transaction(sessions) as session:
            if verify_keyring_canary(session, keys):
                log.info("sealed a canary for key-encryption key %s", keys.configured)
            bootstrap = settings.bootstrap_admin_token
            if bootstrap and ensure_bootstrap_admin(session, bootstrap.get_secret_value()):
                log.info("PMAP_BOOTSTRAP_ADMIN_TOKEN became the first admin token of organization 'default'")
    except BaseException:
        engine.dispose()
        raise
    keys.follow(announced_kek(sessions), settings.kek_refresh_seconds)  # a rotation's new KEK, without a restart
    audit = AuditLog(sessions)
    metrics = metrics or new_metrics()
    keys.observer = metrics  # pmap_data_keys_total: cache hits, provider (HSM) unwraps, failures
    chain = AuditChain(engine, keys, AuditStream(settings.audit_stream) if settings.audit_stream else None,
                       on_failure=metrics.audit_chain_failed)
    chain.install(sessions)
    return AppState(settings=settings, engine=engine, sessions=sessions, keys=keys, audit=audit,
                    resolver=CredentialResolver(keys, audit, identifier_fields, metrics=metrics),
                    outbound=OutboundSlots(settings.outbound_concurrency, settings.outbound_concurrency_per_org),
                    metrics=metrics, audit_chain=chain)


def _sync_of_run(state: AppState, jobs: JobRunner, run: RunFinished) -> str:
    """The webhooks' sync trigger: queue a sync of the finished run (see :mod:`pmap.webhooks.triggers`)."""
    return sync_of_run(state, jobs, run.organization_id, run.integration_id, run.vendor, run.run, run.branch)


def broker_dispatcher(settings: Settings) -> CeleryDispatcher | None:
    """The broker's dispatcher when PMAP_BROKER_URL is set (nothing is connected until the first send)."""
    if settings.broker_url is None:
        return None
    return CeleryDispatcher(celery_app(settings.broker_url.get_secret_value(),
                                       visibility_timeout=settings.broker_visibility_timeout,
                                       namespace=settings.broker_namespace), settings.broker_namespace)


def compose_jobs(state: AppState, dispatcher: Dispatcher | None = None) -> JobRunner:
    """The job runner of a started app or worker, with every kind's task function: imports, ``sync`` (pmap.sync),
    ``scan`` (pmap.scans, on a pool of its own when jobs run here); an import or sync that reopened findings gets
    their closed tickets opened again, after it committed."""
    return start_jobs(state, handlers={KIND_SYNC: sync_handler(state), KIND_SCAN: scan_handler(state),
                                       KIND_TICKET_RECONCILE: functools.partial(_reconcile_job, state)},
                      pools={KIND_SCAN: SCAN_WORKERS}, dispatcher=dispatcher,
                      on_success=lambda _kind, result: reopen_after_import(state, result))


def _reconcile_job(state: AppState, call: JobCall) -> dict[str, Any]:
    """A ``ticket_reconcile`` job: ask one tracker for its tickets no delivery updated lately."""
    summary = reconcile_tickets(state, integration_id=uuid.UUID(call.params["integration_id"]))
    return dataclasses.asdict(summary)


def queue_reconciles(state: AppState, jobs: JobRunner) -> int:
    """Queue a ``ticket_reconcile`` job for each tracker with tickets due (one queued or running per tracker);
    how many were queued."""
    with state.sessions() as session:
        due = trackers_due(session, now=utcnow(), after=state.settings.ticket_reconcile_after)
    queued = 0
    for integration_id, organization_id in due:
        try:
            jobs.submit(system_actor(organization_id), KIND_TICKET_RECONCILE, {"integration_id": str(integration_id)},
                        exclusive=f"{KIND_TICKET_RECONCILE}:{integration_id}")
            queued += 1
        except Conflict:  # the last one is still queued or running
            continue
    return queued


def compose_scheduler(state: AppState, jobs: JobRunner, broker: CeleryDispatcher | None = None, *,
                      wake_webhooks: Callable[[], None] | None = None) -> Scheduler:
    """The scheduler: due syncs and webhook secret rotations, ``ticket_reconcile`` jobs, jobs whose process died,
    and the webhook deliveries left accepted with the delivery retention: with a broker a pass run on a worker,
    without one ``wake_webhooks`` (the app's webhook processor)."""
    periodic: dict[str, tuple[float, Callable[[], object]]] = {
        # a quarter of the quiet time a ticket may have: a missed webhook is noticed soon after
        "ticket_reconcile": (state.settings.ticket_reconcile_after / 4, lambda: queue_reconciles(state, jobs)),
        # a job whose worker died and whose message no broker delivers again: dispatched again
        "job_sweep": (state.settings.job_lease_seconds, lambda: _sweep_jobs(state, jobs)),
    }
    if broker is not None:
        periodic["webhook_maintenance"] = (60.0, functools.partial(broker.send_periodic, "webhook_maintenance"))
    elif wake_webhooks is not None:
        periodic["webhook_maintenance"] = (60.0, wake_webhooks)
    return Scheduler(state.sessions, {
        KIND_SYNC: scheduled_sync(state.sessions, jobs),
        KIND_WEBHOOK_ROTATION: scheduled_rotation(state, state.sessions),
    }, interval=state.settings.scheduler_interval, periodic=periodic)


def _sweep_jobs(state: AppState, jobs: JobRunner) -> None:
    with state.sessions() as session:
        found = orphans(session)
    jobs.redispatch(found)


class Worker:
    """One ``pmapctl worker`` process's runtime (built after the fork, on its first task): the app's state, a
    runner whose follow-up jobs go to the broker, and the webhook processor."""

    def __init__(self, settings: Settings) -> None:
        configure_logging(production=settings.production, level=settings.log_level)  # this pool process's own
        self.state = state = start(settings)
        dispatcher = broker_dispatcher(settings)
        if dispatcher is None:
            raise ConfigurationError("pmapctl worker needs PMAP_BROKER_URL (a redis:// or amqp:// URL)")
        self.jobs = compose_jobs(state, dispatcher)
        trigger = functools.partial(_sync_of_run, state, self.jobs)
        self.processor = Processor(state.sessions, scheme_key, state.settings.webhook_retention_days,
                                   trigger=lambda: trigger)

    def execute(self, job_id: uuid.UUID, origin: str | None) -> Again | Requeue | None:
        """Run one delivery of a job."""
        return self.jobs.execute(job_id, origin)

    def process_deliveries(self, ids: Sequence[uuid.UUID]) -> None:
        """Process accepted webhook deliveries."""
        self.processor.process(list(ids))

    def periodic(self, name: str) -> None:
        """One pass of a periodic task the scheduler sent: the webhook deliveries left accepted and the delivery
        retention."""
        if name == "webhook_maintenance":
            self.processor.sweep_and_prune()
        else:
            log.warning("unknown periodic task %r ignored", name)

    def close(self) -> None:
        """Stop the runner and close the database."""
        self.jobs.shutdown()
        self.state.engine.dispose()
        self.state.keys.close()


def readiness(state: AppState, dispatcher: Dispatcher | None = None) -> Readiness:
    """The checks of /readyz: the database, the key provider and, when configured, the broker and the Redis of
    shared state."""
    ready = Readiness(state.settings.readiness_timeout)
    ready.add("database", database_check(state.engine, state.settings.readiness_timeout))
    if isinstance(dispatcher, CeleryDispatcher):
        ready.add("broker", dispatcher.ping)

    def keyring() -> None:
        if not keyring_usable(state.keys):
            raise RuntimeError("keyring")

    ready.add("keyring", keyring)
    redis_url = state.settings.resolved_redis_url
    if redis_url is not None:  # the webhook rate limits are shared through it
        ready.add("redis", redis_check(redis_url, state.settings.readiness_timeout))
    return ready


# The probes are module-level routes reading the app from the request: a route defined inside create_app
# would close over its app, and FastAPI's module-level caches of endpoint callables would keep every app
# ever created (and its engine) alive.
probes_router = APIRouter(tags=["health"])
metrics_router = APIRouter(tags=["health"])


@probes_router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 when the database answers and the keyring seals and opens."""
    state: AppState = request.app.state.pmap
    checks = {"database": False, "keyring": keyring_usable(state.keys)}
    try:
        with state.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:  # health is a yes/no; the reason goes to the log
        log.exception("health check: database unreachable")
    ok = all(checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks, "version": __version__},
                        status_code=200 if ok else 503)


@probes_router.get("/readyz", responses={503: {"description": "a check failed"}})
def readyz(request: Request) -> JSONResponse:
    """200 when every dependency answers (database, key provider); 503 naming the ones that do not.
    No token: for probes. Per check: ``status``, ``seconds`` and, on failure, ``error`` (a class name or
    ``timeout``), nothing else."""
    ok, checks = request.app.state.ready.run()
    return JSONResponse({"status": "ready" if ok else "unavailable", "checks": checks},
                        status_code=200 if ok else 503, headers={"Cache-Control": "no-store"})


@metrics_router.get("/metrics", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format"}})
def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics of this process (no token: for scrapers; nothing in them is secret)."""
    metrics: Metrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The PMAP API. Nothing is opened until the app starts (lifespan)."""
    settings = settings or get_settings()
    metrics = new_metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(production=settings.production, level=settings.log_level)
        # synchronous routes run in worker threads; outbound operations may hold only
        # PMAP_OUTBOUND_CONCURRENCY of them (pmap.core.concurrency), the rest stay for everything else
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        state = app.state.pmap = start(settings, metrics)
        # with a broker this process only sends jobs (and webhook deliveries) to the workers; else it runs them
        dispatcher = broker_dispatcher(settings)
        if dispatcher is not None:
            app.state.deliveries_sender = dispatcher.send_deliveries
            log.info("jobs go to the broker at %s", redacted(settings.broker_url.get_secret_value())
                     if settings.broker_url else "")
        app.state.ready = readiness(state, dispatcher)
        lag_read = Bounded("metrics", settings.readiness_timeout)  # a scrape must not hang on a stuck database
        metrics.sync_lag_reader = lambda: lag_read(lambda: read_sync_lag(state.engine))
        # background jobs; without a broker, the jobs a stopped or dead process left resume here
        app.state.jobs = jobs = compose_jobs(state, dispatcher)
        # a verified webhook reporting a finished pipeline run queues a sync of that run
        app.state.sync_trigger = functools.partial(_sync_of_run, state, jobs)
        scheduler: Scheduler | None = None
        # several processes may each run one (a due run starts once); with a broker, `pmapctl scheduler` runs it
        if settings.scheduler_enabled and dispatcher is None:
            scheduler = compose_scheduler(state, jobs,
                                          wake_webhooks=lambda: receiver.runtime(app.state).processor.wake())
            scheduler.start()
        try:
            yield
        finally:
            if scheduler is not None:
                scheduler.shutdown()
            metrics.sync_lag_reader = None
            lag_read.shutdown()
            app.state.ready.shutdown()
            app.state.jobs.shutdown()
            receiver.shutdown(app.state)
            app.state.pmap.engine.dispose()
            app.state.pmap.keys.close()

    app = FastAPI(
        title="PMAP", version=__version__, lifespan=lifespan,
        docs_url=None, redoc_url=None,  # /docs is the console's, its Swagger UI served from here (pmap.console)
        description="Connector hub of a vulnerability management platform. Secret fields are write-only.",
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware,
        default_limit=settings.max_body_bytes,
        limits=[(r"^/api/v1/integrations/[^/]+/imports$", settings.max_import_bytes),
                (r"^/hooks/", settings.webhook_max_body_bytes)],
    )

    def on_answer(route: str, status: int) -> None:
        if status == 413 and route == RECEIVER_ROUTE:  # refused by the body cap, before the receiver ran
            metrics.delivery(Delivery.TOO_LARGE)

    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.production)
    app.add_middleware(MetricsMiddleware, metrics=metrics, on_answer=on_answer)  # outermost: times everything

    api = APIRouter(prefix=API_PREFIX, dependencies=[KnownQueryOnly])  # an unknown query parameter is a 422
    for router in (connectors_router, integrations_router, sync_router, scans_router, webhooks_router,
                   findings_router, tickets_router, audit_router, auth_router):
        api.include_router(router)
    app.include_router(api)
    app.include_router(receiver_router)
    app.include_router(console_router)  # the web console at /, over the API above

    app.state.metrics = metrics
    app.include_router(probes_router)
    if settings.metrics_enabled:
        app.include_router(metrics_router)

    return app
