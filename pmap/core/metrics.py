"""Prometheus metrics of one app, every one defined here, every label value from a bounded set.

Each app owns its :class:`Metrics` (its own ``CollectorRegistry``, never the process-global one), so
several apps in one process (tests, benchmarks) count apart. ``GET /metrics`` answers without a token,
as scrapers expect, so nothing here may carry a secret or a value a client chooses: routes are
templates (``/api/v1/integrations/{integration_id}``, never the raw path), methods, status classes,
vendors, job kinds, purposes and outcomes are each checked against a set fixed at start-up, and
anything else is counted as ``other``. No label carries an id of any kind.

The counters are per process: ``pmapctl serve`` runs one. Several processes behind one port would each
answer for themselves (see the README, "Monitoring").
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Boolean, String, column, func, select, table
from sqlalchemy.engine import Engine
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pmap.core.db import UTCDateTime

log = logging.getLogger("pmap.metrics")

CONTENT_TYPE = CONTENT_TYPE_LATEST
OTHER = "other"  # a value outside a label's bounded set
UNMATCHED = "unmatched"  # a request no route matches (404): its path is never a label
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CLASSES = frozenset({"1xx", "2xx", "3xx", "4xx", "5xx"})
DECRYPT_OUTCOMES = ("success", "failure")
JOB_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class JobOutcome(str, enum.Enum):
    """How a background job ended."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # the service stopped before or while it ran
    ORPHANED = "orphaned"  # its process died; failed at the next start


class Delivery(str, enum.Enum):
    """What became of one webhook delivery (the receiver's verification outcome)."""

    ACCEPTED = "accepted"  # signature verified, stored
    ACCEPTED_UNSIGNED = "accepted_unsigned"  # no secret configured, and unsigned deliveries allowed
    DUPLICATE = "duplicate"  # a delivery id (or signed bytes) seen before: acknowledged, not processed again
    RATE_LIMITED = "rate_limited"  # verified, over its integration's budget: 429
    TOO_LARGE = "too_large"  # over PMAP_WEBHOOK_MAX_BODY_BYTES: 413 before the receiver runs
    UNKNOWN_INTEGRATION = "rejected_unknown_integration"  # malformed or unknown id
    DISABLED = "rejected_disabled"
    NO_WEBHOOKS = "rejected_no_webhooks"  # the vendor type sends none
    UNSIGNED = "rejected_unsigned"  # production, no secret configured, unsigned not allowed
    MISSING_SIGNATURE = "rejected_missing_signature"
    BAD_SIGNATURE = "rejected_bad_signature"  # a well-formed proof that matches no configured secret
    MALFORMED_SIGNATURE = "rejected_malformed_signature"  # unparseable, duplicated, or a refused algorithm
    STALE_TIMESTAMP = "rejected_stale_timestamp"  # a signed timestamp outside the tolerance: a replay
    EMPTY_SLOT = "rejected_empty_secret_slot"  # the secret slot holds no usable secret
    REJECTED_OTHER = "rejected_other"
    UNAVAILABLE = "unavailable"  # the secret could not be decrypted, or the row kept changing: 503


class Budget(str, enum.Enum):
    """The webhook receiver's budgets (:mod:`pmap.webhooks.ratelimit`)."""

    VERIFIED = "verified"  # verified deliveries per integration
    FAILED_SOURCE = "failed_source"  # failed verifications recorded one by one, per source address
    FAILED_INTEGRATION = "failed_integration"  # the same, per integration


#: (what a rejection reason contains, its outcome), first match wins; the reasons are the receiver's and the
#: schemes' own short texts (pmap.webhooks), never a value from the delivery
_REJECTIONS = (
    ("disabled", Delivery.DISABLED), ("sends no webhooks", Delivery.NO_WEBHOOKS), ("unsigned", Delivery.UNSIGNED),
    ("could not be decrypted", Delivery.UNAVAILABLE), ("timestamp outside", Delivery.STALE_TIMESTAMP),
    ("no secret", Delivery.EMPTY_SLOT), ("no usable secret", Delivery.EMPTY_SLOT),
    ("missing", Delivery.MISSING_SIGNATURE), ("mismatch", Delivery.BAD_SIGNATURE),
    ("malformed", Delivery.MALFORMED_SIGNATURE), ("duplicate", Delivery.MALFORMED_SIGNATURE),
    ("sha1", Delivery.MALFORMED_SIGNATURE), ("unsupported", Delivery.MALFORMED_SIGNATURE),
)


#: what ``pmap_audit_chain_failures`` counts (pmap.audit.chain)
AUDIT_CHAIN_FAILURES = frozenset({"seal", "stream"})
KEK_PROVIDERS = frozenset({"keyring", "pkcs11"})  # pmap.core.crypto.KekProvider names
DATA_KEY_SOURCES = ("cache", "unwrapped", "failed")  # pmap.core.crypto.DataKeyObserver

def delivery_rejection(reason: str | None) -> Delivery:
    """The outcome of a rejection from its internal reason (a scheme's verdict or the receiver's)."""
    text = (reason or "").lower()
    return next((outcome for needle, outcome in _REJECTIONS if needle in text), Delivery.REJECTED_OTHER)


def status_class(status: int) -> str:
    """``2xx`` for 200..299, and so on; ``other`` outside 100..599."""
    label = f"{status // 100}xx"
    return label if label in STATUS_CLASSES else OTHER


_BUDGETS = frozenset(b.value for b in Budget)


def _bounded(value: str, allowed: frozenset[str]) -> str:
    return value if value in allowed else OTHER


# the columns read at scrape time (core does not import the integrations domain's model)
_INTEGRATIONS = table("integrations", column("vendor", String), column("enabled", Boolean),
                      column("last_synced_at", UTCDateTime))


class _SyncLag(Collector):
    """Sync lag per vendor type, read from the database at scrape time (nothing is cached between scrapes).

    Per vendor type, not per integration: /metrics answers anyone, and integration ids would list every
    organization's integrations and so their receiving URLs (``/hooks/{id}``), which the receiver takes
    care never to confirm. The worst lag of a vendor type is what alerts; which integration it is, is in
    the authenticated API (``last_synced_at`` of each integration). A vendor value this build does not
    know is ``other``.
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def describe(self) -> Iterable[Metric]:
        return self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("pmap_sync_lag_seconds", "Seconds since the least recently synced enabled integration "
                              "of each vendor type last synced (integrations that never synced are not counted)",
                              labels=["vendor"]),
            GaugeMetricFamily("pmap_synced_integrations", "Enabled integrations with a last sync time, per vendor "
                              "type (the population of pmap_sync_lag_seconds)", labels=["vendor"]),
        )

    def collect(self) -> Iterable[Metric]:
        lag, count = self._families()
        reader = self._metrics.sync_lag_reader
        if reader is not None:
            try:
                rows = reader()
            except Exception as exc:  # the scrape still answers the other families
                self._metrics.sync_lag_errors.inc()
                log.warning("metrics: reading the sync lag failed (%s)", type(exc).__name__)
                rows = []
            now = datetime.now(UTC)
            worst: dict[str, float] = {}
            totals: dict[str, int] = {}
            for vendor, oldest, n in rows:
                label = _bounded(vendor, self._metrics.vendors)
                seconds = max(0.0, (now - oldest).total_seconds())
                worst[label] = max(worst.get(label, 0.0), seconds)
                totals[label] = totals.get(label, 0) + int(n)
            for label in sorted(worst):
                lag.add_metric([label], worst[label])
                count.add_metric([label], totals[label])
        return [lag, count]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


#: (vendor, oldest last_synced_at, how many) of the enabled integrations that have synced
SyncLagRows = list[tuple[str, datetime, int]]


def read_sync_lag(engine: Engine) -> SyncLagRows:
    """One grouped query: per vendor, the oldest last sync of its enabled integrations and their number."""
    statement = (select(_INTEGRATIONS.c.vendor, func.min(_INTEGRATIONS.c.last_synced_at), func.count())
                 .where(_INTEGRATIONS.c.enabled.is_(True), _INTEGRATIONS.c.last_synced_at.is_not(None))
                 .group_by(_INTEGRATIONS.c.vendor))
    with engine.connect() as conn:
        return [(str(vendor), _aware(oldest), int(n)) for vendor, oldest, n in conn.execute(statement)]


class Metrics:
    """The metrics of one app and the bounded label sets they are checked against."""

    def __init__(self, *, vendors: Iterable[str] = (), purposes: Iterable[str] = (),
                 job_kinds: Iterable[str] = (), formats: Iterable[str] = ()) -> None:
        self.vendors = frozenset(vendors)
        self.formats = frozenset(formats)
        self.purposes = frozenset(purposes)
        self.job_kinds = frozenset(job_kinds)
        self.registry = CollectorRegistry(auto_describe=False)
        # set once the database is open (pmap.app.start): called at each scrape, its time bounded
        self.sync_lag_reader: Callable[[], SyncLagRows] | None = None
        r = self.registry
        ProcessCollector(registry=r)  # CPU, memory, open files; not python_info: no version to fingerprint
        self.requests = Histogram(
            "pmap_http_request_duration_seconds", "Time to answer an HTTP request, by route template, method and "
            "status class", ["route", "method", "status_class"], registry=r)
        self.jobs = Counter("pmap_jobs_finished", "Background jobs finished, by kind and outcome",
                            ["kind", "outcome"], registry=r)
        self.job_seconds = Histogram("pmap_job_duration_seconds", "Run time of background jobs that started, by "
                                     "kind and outcome", ["kind", "outcome"], buckets=JOB_BUCKETS, registry=r)
        self.deliveries = Counter("pmap_webhook_deliveries", "Inbound webhook deliveries by verification outcome",
                                  ["outcome"], registry=r)
        self.rate_limit_fallbacks = Counter(
            "pmap_webhook_rate_limit_fallbacks", "Webhook budget checks answered by this process's own buckets "
            "because the configured Redis did not answer, by budget", ["budget"], registry=r)
        self.decrypts = Counter("pmap_credential_decrypts", "Decrypts through the audited credential path, by "
                                "purpose and outcome", ["purpose", "outcome"], registry=r)
        self.audit_chain_failures = Counter(
            "pmap_audit_chain_failures", "Audit chain seals that failed (their events wait for the next seal) and "
            "audit stream sends that failed (those events are not streamed), by what failed", ["what"], registry=r)
        self.data_keys = Counter(
            "pmap_data_keys", "Data keys envelope opens needed, by key-encryption key provider and where each came "
            "from: the in-memory cache, unwrapped by the provider (with an HSM, one call to it) or failed to unwrap",
            ["provider", "source"], registry=r)
        # a real counter, fed by the formats' listener (pmap.app.new_metrics), so a worker's pool processes sum it
        self.parser_faults = Counter(
            "pmap_report_parser_faults", "Unexpected exceptions inside a report parser or detector, by format (each "
            "is a bug, logged with its traceback)", ["format"], registry=r)
        r.register(_SyncLag(self))  # before its error counter: a scrape collects in this order, so it shows its own
        self.sync_lag_errors = Counter("pmap_sync_lag_read_errors", "Scrapes whose sync lag read failed or timed "
                                       "out (the sync lag is then missing from that scrape)", registry=r)
        # every series of a bounded set exists from the start, so rate() sees the first event
        for outcome in Delivery:
            self.deliveries.labels(outcome=outcome.value)
        for budget in Budget:
            self.rate_limit_fallbacks.labels(budget=budget.value)
        for what in AUDIT_CHAIN_FAILURES:
            self.audit_chain_failures.labels(what=what)
        for provider in KEK_PROVIDERS:
            for source in DATA_KEY_SOURCES:
                self.data_keys.labels(provider=provider, source=source)
        for key in self.formats:
            self.parser_faults.labels(format=key)
        for purpose in self.purposes:
            for result in DECRYPT_OUTCOMES:
                self.decrypts.labels(purpose=purpose, outcome=result)
        for kind in self.job_kinds:
            for job_outcome in JobOutcome:
                self.jobs.labels(kind=kind, outcome=job_outcome.value)

    # --- what the service counts ------------------------------------------------------------------

    def request(self, route: str, method: str, status: int, seconds: float) -> None:
        """One answered HTTP request (``route`` is a template or :data:`UNMATCHED`)."""
        self.requests.labels(route=route, method=_bounded(method, METHODS),
                             status_class=status_class(status)).observe(seconds)

    def job_finished(self, kind: str, outcome: JobOutcome, seconds: float | None = None) -> None:
        """A background job ended; ``seconds`` is its run time when it started."""
        label = _bounded(kind, self.job_kinds)
        self.jobs.labels(kind=label, outcome=outcome.value).inc()
        if seconds is not None:
            self.job_seconds.labels(kind=label, outcome=outcome.value).observe(seconds)

    def delivery(self, outcome: Delivery) -> None:
        """One webhook delivery answered."""
        self.deliveries.labels(outcome=outcome.value).inc()

    def rate_limit_fallback(self, budget: str) -> None:
        """One webhook budget check answered in process: Redis did not answer."""
        self.rate_limit_fallbacks.labels(budget=_bounded(budget, _BUDGETS)).inc()

    def audit_chain_failed(self, what: str) -> None:
        """A seal (``seal``) or a stream send (``stream``) of the audit chain failed."""
        self.audit_chain_failures.labels(what=_bounded(what, AUDIT_CHAIN_FAILURES)).inc()

    def data_key(self, provider: str, source: str) -> None:
        """Where the data key of one envelope open came from (:class:`pmap.core.crypto.DataKeyObserver`)."""
        self.data_keys.labels(provider=_bounded(provider, KEK_PROVIDERS),
                              source=source if source in DATA_KEY_SOURCES else OTHER).inc()

    def parser_fault(self, key: str) -> None:
        """One unexpected exception inside the ``key`` format's parser or detector."""
        self.parser_faults.labels(format=_bounded(key, self.formats)).inc()

    def decrypted(self, purpose: str, ok: bool) -> None:
        """One decrypt through the audited path."""
        self.decrypts.labels(purpose=_bounded(purpose, self.purposes),
                             outcome=DECRYPT_OUTCOMES[0] if ok else DECRYPT_OUTCOMES[1]).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class RouteTemplates:
    """The full path template of every route of an app (``/api/v1/integrations/{integration_id}``).

    Routers included under a prefix are walked (FastAPI 0.165 keeps them as included routers whose
    routes carry only their own part of the path; older releases copy each route with the full path):
    a label is always one of these templates or :data:`UNMATCHED`, never a path a client sent.
    """

    def __init__(self, routes: Iterable[Any]) -> None:
        self.by_route: dict[int, str] = {}
        self.patterns: list[tuple[re.Pattern[str], str]] = []
        for route, template in _walk(routes, ""):
            self.by_route.setdefault(id(route), template)
            self.patterns.append((compile_path(template)[0], template))

    @property
    def templates(self) -> frozenset[str]:
        """Every label value a route can give (plus :data:`UNMATCHED`)."""
        return frozenset(t for _, t in self.patterns) | {UNMATCHED}

    def of(self, scope: Scope) -> str:
        """The template of the route that answered; for an answer given before routing, of the route that
        would have (by path alone); :data:`UNMATCHED` when none."""
        route = scope.get("route")
        if route is not None and id(route) in self.by_route:
            return self.by_route[id(route)]
        path = scope.get("path", "")
        for pattern, template in self.patterns:
            if pattern.match(path):
                return template
        return UNMATCHED


def _walk(routes: Iterable[Any], prefix: str) -> Iterator[tuple[Any, str]]:
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)  # a FastAPI included router
        if callable(contexts):
            for context in contexts():
                original, path = getattr(context, "original_route", None), getattr(context, "path", None)
                if original is not None and isinstance(path, str) and path:
                    yield original, prefix + path
        elif isinstance(getattr(route, "path", None), str):
            yield route, prefix + route.path


class MetricsMiddleware:
    """Times every HTTP request and labels it with the template of the route that answered it.

    Outermost, so answers given before routing (413, a NUL in the URL) are timed too. ``on_answer``
    sees each (route template, status) pair (the webhook receiver's 413s are counted as deliveries there).
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics,
                 on_answer: Callable[[str, int], None] | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.on_answer = on_answer
        self._templates: RouteTemplates | None = None

    def templates(self, scope: Scope) -> RouteTemplates:
        """The app's route templates, read once (routes are all added before the first request)."""
        if self._templates is None:
            self._templates = RouteTemplates(getattr(scope.get("app"), "routes", ()))
        return self._templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an exception that escapes every handler: the server answers 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = self.templates(scope).of(scope)
            self.metrics.request(route, str(scope.get("method", "")), status, time.perf_counter() - started)
            if self.on_answer is not None:
                self.on_answer(route, status)
