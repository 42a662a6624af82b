"""The inbound receiver behind ``POST /hooks/{integration_id}``: verify, de-duplicate, store, answer.

Order of work for one delivery (the signature is the only authentication):

1. the raw body is read (the request middleware caps it at ``PMAP_WEBHOOK_MAX_BODY_BYTES``);
2. a malformed id is a failure at once; otherwise the integration is read (cached, see
   :mod:`pmap.webhooks.store`); an unknown id is a failure too;
3. the webhook secret is decrypted through the resolver (purpose ``webhook_verification``) and the
   raw bytes are verified by the vendor's scheme, before anything is parsed. Verifying first is cheap
   (a cached row, an AES-GCM open, an HMAC) and is what lets budgets tell senders apart: the resolver's
   audit sink is an :class:`AuditBuffer`, whose events are written with the delivery's row (step 5) or
   counted (step 4);
4. budgets, charged after verification (:mod:`pmap.webhooks.ratelimit`):
   - a delivery that verifies is charged to its integration's verified budget
     (``PMAP_WEBHOOK_RATE_PER_MINUTE``; beyond it 429 + Retry-After, the vendor delivers it again), so
     even a leaked secret cannot flood the database; it is never charged to the failed budget;
   - a failure (bad proof, unknown or malformed id, disabled integration) is charged to the budget of
     failures of its source address (the client address the server gives; no proxy header is read)
     and of its integration (``PMAP_WEBHOOK_FAILED_RATE_PER_MINUTE`` each). Within it the failure is
     recorded one by one without its body; beyond it, it is only counted
     (:mod:`pmap.webhooks.unrecorded`: one summary row and one summary audit event per interval), so
     junk posts cost no write each and cannot use up what signed deliveries need. Every failure is
     answered the same generic 401, within the budget or beyond it, so an unknown id, a bad signature
     and the state of a budget cannot be told apart (and a 401, unlike a 429, invites no retry);
   the budgets are per process, or global when a Redis is configured (``PMAP_REDIS_URL``, else a
   redis:// broker; its calls are made in worker threads, and a Redis that does not answer leaves the
   check to the process's own buckets: see :mod:`pmap.webhooks.ratelimit`);
5. the delivery row (unique on the vendor's delivery id) and the audit event are committed in one
   transaction, group-committed with concurrent deliveries (:mod:`pmap.webhooks.writer`), BEFORE
   the 2xx answer;
6. accepted rows go to the background :class:`~pmap.webhooks.processor.Processor`; a delivery
   that cannot carry anything PMAP acts on (see :func:`pmap.tickets.processing.needs_processing`) is stored
   directly as processed.

A correctly signed delivery is therefore always verified and accepted (up to its integration's
verified budget), even from a source that is over its budget of failures.

A delivery id seen before is acknowledged (200) and not processed again, unless its processing
failed: then it is accepted and processed again. Verification runs on the event loop (a few
microseconds of AES-GCM and HMAC; large bodies go to a worker thread); database reads of a cache
miss, rejections and duplicates run in worker threads.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import insert, select, update
from starlette.datastructures import Headers

from pmap.core.db import new_id, write_transaction
from pmap.core.errors import CryptoError
from pmap.core.http_errors import error_body
from pmap.core.metrics import Delivery, delivery_rejection
from pmap.core.seams import Actor, Purpose
from pmap.core.state import AppState
from pmap.credentials.service import CredentialResolver
from pmap.tickets import processing
from pmap.webhooks import clock, service, triggers
from pmap.webhooks.models import Outcome, Verification
from pmap.webhooks.processor import Processor
from pmap.webhooks.ratelimit import Buckets, FailedBudget, SharedRedis, budgets
from pmap.webhooks.schemes import SCHEMES, body_id
from pmap.webhooks.store import (
    DELIVERIES,
    STALE,
    STORED,
    AuditBuffer,
    IntegrationRow,
    Pending,
    Store,
    write_audit,
)
from pmap.webhooks.unrecorded import Unrecorded
from pmap.webhooks.writer import BatchWriter

log = logging.getLogger("pmap.webhooks.receiver")

_INLINE_VERIFY_BYTES = 64 * 1024  # larger bodies are verified in a worker thread
_EVENT_HEADERS = ("x-github-event", "x-gitlab-event", "x-event-key", "x-snyk-event")
# where each scheme carries its delivery id when a delivery is accepted unsigned (no secret configured)
_UNSIGNED_ID_HEADERS = {
    "github": ("x-github-delivery",), "gitlab_token": ("idempotency-key", "x-gitlab-webhook-uuid"),
    "jira": ("x-atlassian-webhook-identifier",), "bitbucket": ("x-request-uuid",), "snyk": ("x-snyk-transport-id",),
    "servicenow": ("x-pmap-delivery",), "standard_webhooks": ("webhook-id",),
}
_SLOTS = ("current", "previous")
ACCEPTED = {"status": "accepted"}
DUPLICATE = {"status": "duplicate"}


@dataclass(frozen=True, slots=True)
class Answer:
    """The HTTP answer to one delivery."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None


def rejected() -> Answer:
    """The one answer for a bad proof, an unknown id and a malformed id: nothing can be probed."""
    return Answer(401, error_body("authentication_required", "webhook delivery rejected"))


@dataclass
class Runtime:
    """Per-app receiver state: database access, the writer, the budgets, the processor, counters."""

    state: AppState
    store: Store
    writer: BatchWriter
    buckets: Buckets  # verified deliveries per integration
    failed: FailedBudget  # failures recorded one by one, per source and per integration
    unrecorded: Unrecorded  # failures beyond that budget, counted
    processor: Processor
    counters: dict[str, int] = field(default_factory=lambda: {"rejected_unknown": 0})
    shared: SharedRedis | None = None  # the Redis of the budgets, when one is configured

    def flush_unrecorded(self) -> None:
        """Write the summaries of counted deliveries now (a timer does it within seconds)."""
        self.unrecorded.flush()


_runtime_lock = threading.Lock()


def runtime(app_state: Any) -> Runtime:
    """The receiver runtime of one app (``request.app.state``), created on first use."""
    rt = getattr(app_state, "webhook_runtime", None)
    if rt is None:
        with _runtime_lock:
            rt = getattr(app_state, "webhook_runtime", None)
            if rt is None:
                state: AppState = app_state.pmap
                seal = state.audit_chain.seal_quietly if state.audit_chain is not None else None
                store = Store(state.engine, seal)
                # with a Redis the budgets are global (every process takes from them), else per process
                url = state.settings.resolved_redis_url
                shared = SharedRedis(url, on_fallback=state.metrics.rate_limit_fallback) if url else None
                verified, failed = budgets(state.settings.webhook_rate_per_minute,
                                           state.settings.webhook_failed_rate_per_minute, shared)
                rt = Runtime(state=state, store=store, writer=BatchWriter(store), buckets=verified, failed=failed,
                             shared=shared,
                             unrecorded=Unrecorded(state.engine, seal=seal),
                             processor=Processor(state.sessions, lambda vendor: service.scheme_key(vendor),
                                                 state.settings.webhook_retention_days,
                                                 trigger=lambda: getattr(app_state, "sync_trigger", None),
                                                 send=getattr(app_state, "deliveries_sender", None)))
                app_state.webhook_runtime = rt
    return rt


def shutdown(app_state: Any) -> None:
    """Write what the receiver only counted so far (at app shutdown)."""
    rt = getattr(app_state, "webhook_runtime", None)
    if rt is not None:
        rt.unrecorded.close()
        if rt.shared is not None:
            rt.shared.close()


def _clean(value: str | None, limit: int) -> str | None:
    if not value:
        return None
    value = value[:limit]
    if not (value.isascii() and value.isprintable()):
        value = "".join(c for c in value if 32 <= ord(c) < 127)
    return value or None


def _event(headers: Headers) -> str | None:
    for name in _EVENT_HEADERS:
        value = headers.get(name)
        if value:
            return _clean(value, 100)
    return None


def _unsigned_id(scheme: str, headers: Headers, body: bytes) -> str:
    for name in _UNSIGNED_ID_HEADERS.get(scheme, ()):
        value = _clean(headers.get(name), 200)
        if value:
            return value
    return body_id(body)


@dataclass(slots=True)
class _Checked:
    """The outcome of checking one delivery against one integration row."""

    pending: Pending | None = None  # accepted: what to store
    reason: str | None = None  # rejected: why (recorded, never answered)
    unavailable: bool = False  # the secret could not be decrypted


async def receive(rt: Runtime, raw_id: str, headers: Headers, body: bytes, source: str = "") -> Answer:
    """Verify, de-duplicate and durably store one delivery from ``source`` (the client address); the answer."""
    try:
        return await _receive(rt, raw_id, headers, body, source)
    except Exception:  # the database failed under it (busy past its timeout, gone): a 503 or 500 follows
        rt.state.metrics.delivery(Delivery.UNAVAILABLE)
        raise


async def _receive(rt: Runtime, raw_id: str, headers: Headers, body: bytes, source: str) -> Answer:
    try:
        integration_id = uuid.UUID(raw_id)
    except ValueError:
        return await _unknown(rt, source)
    audit = AuditBuffer()
    row = rt.store.cached(integration_id)
    fresh = charged = False
    refused: tuple[IntegrationRow, _Checked] | None = None  # a rejection against a cached row
    for _ in range(3):
        if row is None:
            row, fresh = await anyio.to_thread.run_sync(rt.store.lookup, integration_id), True
            if row is None:
                if audit.rows:  # an attempt against a cached row decrypted: that stays audited
                    await anyio.to_thread.run_sync(_reject, rt, None, "", audit)
                return await _unknown(rt, source)
        if fresh and refused is not None and refused[0].same_as(row):
            checked = refused[1]  # the row did not change: the same verdict, without a second decrypt
        else:
            checked = await _check(rt, row, headers, body, audit)
        if checked.pending is not None:
            if not charged:  # once per delivery, however often it is checked again
                wait = await _take(rt.buckets, str(row.id))
                if wait > 0:
                    rt.unrecorded.add(row, checked.pending.audit, None)
                    rt.state.metrics.delivery(Delivery.RATE_LIMITED)
                    return Answer(429, error_body("rate_limited", "too many webhook deliveries"),
                                  {"Retry-After": str(max(1, math.ceil(wait)))})
                charged = True
            answer = await _store(rt, checked.pending)
            if answer is not None:
                return answer
        elif fresh:
            return await _refuse(rt, row, checked, source, headers, body, audit)
        else:
            refused = (row, checked)
        # changed since it was read, or rejected against a cached row: decide on a fresh read
        row = None
    rt.state.metrics.delivery(Delivery.UNAVAILABLE)
    return Answer(503, error_body("unavailable", "the integration is changing; retry later"))


async def _take(buckets: Buckets, key: str) -> float:
    """Take a token of ``key``; in a worker thread when the buckets wait on the network (Redis)."""
    return await anyio.to_thread.run_sync(buckets.take, key) if buckets.blocking else buckets.take(key)


async def _admit(failed: FailedBudget, source: str, integration_id: object | None) -> bool:
    """Charge one failure (:meth:`FailedBudget.admit`); in a worker thread when it waits on the network."""
    if failed.blocking:
        return await anyio.to_thread.run_sync(failed.admit, source, integration_id)
    return failed.admit(source, integration_id)


async def _unknown(rt: Runtime, source: str) -> Answer:
    """A malformed or unknown id: charged to its source like any failure, answered like a bad proof."""
    await _admit(rt.failed, source, None)
    rt.counters["rejected_unknown"] += 1
    rt.state.metrics.delivery(Delivery.UNKNOWN_INTEGRATION)
    return rejected()


async def _refuse(rt: Runtime, row: IntegrationRow, checked: _Checked, source: str, headers: Headers, body: bytes,
                  audit: AuditBuffer) -> Answer:
    """A delivery that failed verification against a fresh read: recorded within the failed budget,
    counted beyond it; the answer is the same either way."""
    reason = checked.reason or "rejected"
    if await _admit(rt.failed, source, row.id):
        answer = await anyio.to_thread.run_sync(_reject, rt, _base(row, headers, body), reason, audit)
        if checked.unavailable:
            log.error("webhook secret of integration %s could not be decrypted", row.id)
        else:
            log.info("webhook delivery rejected: integration=%s reason=%s", row.id, reason)
    else:
        rt.unrecorded.add(row, audit.rows, reason)
        audit.rows.clear()
        answer = rejected()
    # counted once recorded: a failed write is counted as unavailable by receive(), not twice
    rt.state.metrics.delivery(Delivery.UNAVAILABLE if checked.unavailable else delivery_rejection(reason))
    if checked.unavailable:
        return Answer(503, error_body("unavailable", "webhook delivery could not be verified; retry later"))
    return answer


async def _check(rt: Runtime, row: IntegrationRow, headers: Headers, body: bytes, audit: AuditBuffer) -> _Checked:
    if len(body) > _INLINE_VERIFY_BYTES:
        return await anyio.to_thread.run_sync(_verify, rt, row, headers, body, audit)
    return _verify(rt, row, headers, body, audit)


def _base(row: IntegrationRow, headers: Headers, body: bytes, now: datetime | None = None) -> dict[str, Any]:
    return {"organization_id": row.organization_id, "integration_id": row.id, "size": len(body),
            "content_type": _clean(headers.get("content-type"), 100), "created_at": now or clock.now(), "attempts": 1}


def _verify(rt: Runtime, row: IntegrationRow, headers: Headers, body: bytes, audit: AuditBuffer) -> _Checked:
    """Check one delivery against ``row``: what to store, or why it is rejected."""
    key = service.scheme_key(row.vendor)
    if key is None:
        return _Checked(reason="the vendor type sends no webhooks")
    if not row.enabled:
        return _Checked(reason="integration disabled")
    now = clock.now()
    if row.encrypted_webhook_secret is not None:
        actor = Actor(kind="webhook", name=row.vendor, organization_id=row.organization_id)
        resolver = CredentialResolver(rt.state.keys, audit, metrics=rt.state.metrics)
        try:
            with resolver.resolve_webhook_secrets(row, purpose=Purpose.WEBHOOK_VERIFICATION, actor=actor) as secrets:
                verdict = SCHEMES[key].verify(headers, body, secrets.valid(now), now.timestamp())
        except CryptoError:
            return _Checked(reason="webhook secret could not be decrypted", unavailable=True)
        if not verdict.ok:
            return _Checked(reason=verdict.reason)
        delivery_id = verdict.delivery_id or body_id(body)
        dedupe_key = verdict.replay_key or delivery_id
        verification, slot, reason = Verification.SIGNED, _SLOTS[min(verdict.secret_index or 0, 1)], None
    elif rt.state.settings.production and not row.allow_unsigned_webhooks:
        return _Checked(reason="unsigned delivery: no webhook secret configured")
    else:
        log.warning("accepted an unsigned webhook delivery for integration %s (no secret configured)", row.id)
        delivery_id, verification, slot = _unsigned_id(key, headers, body), Verification.UNSIGNED, None
        dedupe_key = delivery_id
        reason = "accepted unsigned: no webhook secret configured"
    base, event = _base(row, headers, body, now), _event(headers)
    # a delivery that cannot carry anything PMAP acts on is processed by being stored
    todo = processing.needs_processing(row.vendor, key, event) or (
        verification is Verification.SIGNED and triggers.may_trigger(row.vendor, key, event))  # a finished run
    values = {**base, "id": new_id(), "dedupe_key": dedupe_key, "delivery_id": delivery_id, "event": event,
              "outcome": (Outcome.ACCEPTED if todo else Outcome.PROCESSED).value, "reason": reason,
              "verification": verification.value, "secret_slot": slot, "body": body,
              "processed_at": None if todo else base["created_at"]}
    pending = Pending(values, list(audit.rows), row)
    audit.rows.clear()  # they travel with the pending delivery and are written whatever happens to it
    return _Checked(pending=pending)


async def _store(rt: Runtime, pending: Pending) -> Answer | None:
    """Commit one accepted delivery (group-committed); None when the integration row it was checked
    against changed meanwhile (check again from a fresh read)."""
    result = await rt.writer.submit(pending)
    if result == STORED:
        _count_accepted(rt, pending.values)
        if pending.values["outcome"] == Outcome.ACCEPTED.value:
            rt.processor.submit(pending.values["id"])
        else:
            rt.processor.tick()
        return Answer(202, ACCEPTED)
    if result == STALE:
        return None
    return await anyio.to_thread.run_sync(_again, rt, pending.values)


def _again(rt: Runtime, values: dict[str, Any]) -> Answer:
    """A delivery id seen before: a failed one is processed again, anything else is a duplicate."""
    redelivered: uuid.UUID | None = None
    with write_transaction(rt.store.engine) as conn:
        existing = conn.execute(
            select(DELIVERIES.c.id, DELIVERIES.c.outcome, DELIVERIES.c.attempts)
            .where(DELIVERIES.c.integration_id == values["integration_id"],
                   DELIVERIES.c.dedupe_key == values["dedupe_key"])
            .with_for_update()
        ).first()
        if existing is not None and existing.outcome == Outcome.FAILED.value:
            conn.execute(update(DELIVERIES).where(DELIVERIES.c.id == existing.id).values(
                outcome=values["outcome"], reason=values["reason"], body=values["body"], size=values["size"],
                content_type=values["content_type"], verification=values["verification"],
                secret_slot=values["secret_slot"], attempts=existing.attempts + 1, processed_at=values["processed_at"],
            ))
            redelivered = existing.id
        else:
            conn.execute(insert(DELIVERIES), {
                **values, "id": new_id(), "dedupe_key": None, "outcome": Outcome.DUPLICATE.value, "body": None,
                "processed_at": None,
                "reason": "already received" if existing is not None else "concurrent duplicate"})
    if redelivered is not None:
        _count_accepted(rt, values)
        if values["outcome"] == Outcome.ACCEPTED.value:
            rt.processor.submit(redelivered)
        return Answer(202, ACCEPTED)
    rt.state.metrics.delivery(Delivery.DUPLICATE)
    return Answer(200, DUPLICATE)


def _count_accepted(rt: Runtime, values: dict[str, Any]) -> None:
    signed = values["verification"] == Verification.SIGNED.value
    rt.state.metrics.delivery(Delivery.ACCEPTED if signed else Delivery.ACCEPTED_UNSIGNED)


def _reject(rt: Runtime, base: dict[str, Any] | None, reason: str, audit: AuditBuffer) -> Answer:
    """Record a rejection WITHOUT the body (no row when ``base`` is None: the integration is gone);
    pending audit events commit with it."""
    with rt.store.engine.begin() as conn:
        if base is not None:
            conn.execute(insert(DELIVERIES), {
                **base, "id": new_id(), "dedupe_key": None, "delivery_id": None, "event": None,
                "outcome": Outcome.REJECTED.value, "reason": reason[:300], "verification": Verification.FAILED.value,
                "secret_slot": None, "body": None, "processed_at": None,
            })
        write_audit(conn, audit.rows)
    if audit.rows and rt.store.seal is not None:
        rt.store.seal()
    audit.rows.clear()
    return rejected()
