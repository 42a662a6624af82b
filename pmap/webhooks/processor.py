"""The background worker that processes accepted deliveries after the receiver has answered.

Choice (documented): the receiver commits the delivery row, answers 2xx, and hands the row id to
this worker, one thread per app started on demand; it exits after a second without work, so no
thread outlives its use. Work is taken in batches, one transaction per batch: deliveries with
nothing to do are marked ``processed`` with one UPDATE; those carrying ticket changes are applied
each in a savepoint, so one bad delivery cannot fail the others. A failure is recorded (``failed`` +
reason) and is retryable: the vendor's redelivery with the same delivery id is accepted and
processed again.

Nothing is lost if the process dies between the answer and the processing: the row stays
``accepted``, and each time a worker starts it sweeps rows left ``accepted`` for over a minute; the scheduler
wakes it every minute for that (:meth:`Processor.wake`; with a broker, ``sweep_and_prune`` on a worker). A
starting worker also applies the delivery retention (:mod:`pmap.webhooks.retention`), at most hourly.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.db import transaction
from pmap.integrations.models import Integration
from pmap.tickets import processing
from pmap.webhooks import clock, triggers
from pmap.webhooks.models import Outcome, Verification, WebhookDelivery
from pmap.webhooks.retention import PRUNE_EVERY, prune_deliveries

log = logging.getLogger("pmap.webhooks.processor")

#: vendor -> webhook scheme key (see :func:`pmap.webhooks.service.scheme_key`)
SchemeLookup = Callable[[str], "str | None"]

BATCH = 200
#: Processing is not on the answer's path: waiting a little for more work makes batches, and a
#: batch costs about what one delivery costs (a few statements, one commit).
LINGER_SECONDS = 0.05
IDLE_EXIT_SECONDS = 1.0
STALE_AFTER = timedelta(seconds=60)
_REASON_CHARS = 300


class Processor:
    """Processes delivery ids handed to :meth:`submit`, in a thread started on demand."""

    def __init__(self, sessions: sessionmaker[Session], scheme_of: SchemeLookup,
                 retention_days: int | None = None,
                 trigger: Callable[[], triggers.SyncTrigger | None] | None = None,
                 send: Callable[[list[uuid.UUID]], None] | None = None) -> None:
        self._sessions = sessions
        # with a broker, deliveries go to the workers (pmap.jobs.broker) instead of this process's thread; the
        # scheduler then sweeps and prunes (sweep_and_prune)
        self._send = send
        self._trigger = trigger  # the app's sync trigger of finished pipeline runs, read when one arrives
        self._scheme_of = scheme_of
        self._retention_days = retention_days
        self._pruned_at: float | None = None  # monotonic time of the last pruning pass
        self._queue: queue.SimpleQueue[uuid.UUID] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0  # ids submitted (or swept) and not finished yet
        self._idle = threading.Condition(self._lock)

    def submit(self, delivery_row_id: uuid.UUID) -> None:
        """Queue one accepted delivery for processing."""
        if self._send is not None:
            try:
                self._send([delivery_row_id])
            except Exception:  # the row stays accepted: the scheduler's sweep sends it again within minutes
                log.exception("could not send delivery %s to the workers", delivery_row_id)
            return
        with self._lock:
            self._pending += 1
            self._queue.put(delivery_row_id)
            self._start()

    def wake(self) -> None:
        """Without a broker: start the worker even with nothing submitted, so it sweeps the deliveries an earlier
        process left accepted and prunes when due (the scheduler calls it every minute: a delivery stored just
        before a crash is processed without waiting for the next one to arrive)."""
        if self._send is None:
            with self._lock:
                self._start()

    def tick(self) -> None:
        """Called for every stored delivery: starts the worker when the retention is due, even if no
        delivery needs processing (most deliveries are finished by being stored)."""
        if self._send is None and self._prune_due():
            with self._lock:
                self._start()

    def _start(self) -> None:  # with self._lock held
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pmap-webhook-processor", daemon=True)
            self._thread.start()

    def _prune_due(self) -> bool:
        return self._retention_days is not None and (
            self._pruned_at is None or time.monotonic() - self._pruned_at >= PRUNE_EVERY.total_seconds())

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is processed (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        try:
            self._sweep()
        except Exception:  # a sweep failure must not stop fresh work
            log.exception("sweeping stale accepted deliveries failed")
        try:
            self._prune()
        except Exception:  # nor a pruning failure; the next start tries again
            log.exception("pruning old webhook deliveries failed")
        while True:
            batch = self._take()
            if not batch:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                self.process(batch)
            except Exception:  # keep the worker alive; rows stay accepted and are swept later
                log.exception("processing a batch of %d deliveries failed", len(batch))
            finally:
                with self._idle:
                    self._pending -= len(batch)
                    self._idle.notify_all()

    def _take(self) -> list[uuid.UUID]:
        try:
            first = self._queue.get(timeout=IDLE_EXIT_SECONDS)
        except queue.Empty:
            return []
        batch = [first]
        until = time.monotonic() + LINGER_SECONDS
        while len(batch) < BATCH:
            left = until - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _sweep(self) -> None:
        cutoff = clock.now() - STALE_AFTER
        with self._sessions() as session:
            ids = session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.outcome == Outcome.ACCEPTED.value, WebhookDelivery.created_at < cutoff)
                .limit(10_000)).all()
        with self._lock:
            for ident in ids:
                self._pending += 1
                self._queue.put(ident)
        if ids:
            log.info("re-queued %d deliveries left accepted by an earlier process", len(ids))

    def sweep_and_prune(self) -> None:
        """With a broker: send the deliveries left accepted for over a minute to the workers again, and apply the
        retention when due (the scheduler calls it)."""
        cutoff = clock.now() - STALE_AFTER
        with self._sessions() as session:
            ids = list(session.scalars(select(WebhookDelivery.id).where(
                WebhookDelivery.outcome == Outcome.ACCEPTED.value, WebhookDelivery.created_at < cutoff)
                .limit(10_000)))
        for start in range(0, len(ids), BATCH):
            if self._send is not None:
                self._send(ids[start:start + BATCH])
            else:
                self.process(ids[start:start + BATCH])
        if ids:
            log.info("sent again %d deliveries left accepted", len(ids))
        self._prune()

    def _prune(self) -> None:
        """Apply the delivery retention (:mod:`pmap.webhooks.retention`), at most once per PRUNE_EVERY."""
        if not self._prune_due():
            return
        started = time.monotonic()
        with transaction(self._sessions) as session:
            result = prune_deliveries(session, clock.now(), self._retention_days)  # type: ignore[arg-type]
        self._pruned_at = started
        if result.bodies_cleared or result.rows_deleted:
            log.info("webhook retention (%d days): cleared %d bodies, deleted %d rows", self._retention_days,
                     result.bodies_cleared, result.rows_deleted)

    def process(self, ids: list[uuid.UUID]) -> None:
        """Process one batch of delivery row ids (those still ``accepted``) in ONE transaction; each
        delivery's ticket changes run in a savepoint, so a failing one is recorded and the rest kept."""
        with self._sessions() as session:  # read, and end the read: the write below starts with a write
            rows = session.execute(
                select(WebhookDelivery.id, WebhookDelivery.organization_id, WebhookDelivery.integration_id,
                       WebhookDelivery.event, WebhookDelivery.content_type, WebhookDelivery.body,
                       WebhookDelivery.verification, Integration.vendor)
                .join(Integration, Integration.id == WebhookDelivery.integration_id)
                .where(WebhookDelivery.id.in_(ids), WebhookDelivery.outcome == Outcome.ACCEPTED.value)
            ).all()
        if not rows:
            return
        read = []
        runs: dict[uuid.UUID, triggers.RunFinished] = {}
        for r in rows:
            d = processing.Delivery(r.id, r.organization_id, r.integration_id, r.vendor,
                                    self._scheme_of(r.vendor) or "", r.event, r.content_type, r.body or b"")
            read.append((d, *_read(d)))
            # only a delivery verified with a configured secret may start a sync
            if r.verification == Verification.SIGNED.value:
                run = triggers.run_finished(d.organization_id, d.integration_id, d.vendor, d.scheme, d.event, d.body)
                if run is not None:
                    runs[d.id] = run
        now = clock.now()
        with transaction(self._sessions) as session:
            # claim first: the transaction opens with a write (SQLite then holds the write lock instead
            # of failing on a stale read snapshot), and rows another worker took are skipped
            claimed = set(session.scalars(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_([d.id for d, *_ in read]),
                       WebhookDelivery.outcome == Outcome.ACCEPTED.value)
                .values(outcome=Outcome.PROCESSED.value, processed_at=now)
                .returning(WebhookDelivery.id).execution_options(synchronize_session=False)
            ))
            failures = {d.id: failure for d, failure, _, _ in read if d.id in claimed and failure is not None}
            todo = [(d, changes) for d, failure, _, changes in read
                    if d.id in claimed and failure is None and changes]
            failures.update(_apply(session, todo, now))
            for d, _, event, _ in read:
                if d.id in failures:
                    _set(session, d.id, outcome=Outcome.FAILED.value, reason=failures[d.id][:_REASON_CHARS])
                elif d.id in claimed and event and event != d.event:
                    _set(session, d.id, event=event[:100])
        started = {ident: run for ident, run in runs.items() if ident in claimed and ident not in failures}
        if started:
            self._start_syncs(started)

    def _start_syncs(self, runs: dict[uuid.UUID, triggers.RunFinished]) -> None:
        """Hand each finished run to the app's sync trigger (after the batch's commit: the job is written in
        its own transaction) and record what became of it in its delivery's ``reason``."""
        trigger = self._trigger() if self._trigger is not None else None
        notes: dict[uuid.UUID, str] = {}
        for ident, run in runs.items():
            if trigger is None:
                notes[ident] = "sync not started: this process runs no jobs"
                continue
            try:
                notes[ident] = trigger(run)
            except Exception as exc:  # the delivery is processed; its note says the sync did not start
                log.exception("starting the sync of run %s of integration %s failed", run.run, run.integration_id)
                notes[ident] = f"sync not started: {type(exc).__name__}"
        with transaction(self._sessions) as session:
            for ident, note in notes.items():
                _set(session, ident, reason=note[:_REASON_CHARS])


def _apply(session: Session, todo: Sequence[processing.Applied], now: datetime) -> dict[uuid.UUID, str]:
    """Hand the batch's ticket changes to the tickets domain in one savepoint; if that fails, one savepoint
    per delivery so only the failing ones are lost. The failures, by delivery row id."""
    if not todo:
        return {}
    try:
        with session.begin_nested():
            processing.apply_changes(session, todo, now=now)
        return {}
    except Exception as exc:
        if len(todo) == 1:
            log.exception("applying the ticket changes of delivery %s failed", todo[0][0].id)
            return {todo[0][0].id: f"processing error: {type(exc).__name__}"}
    failures: dict[uuid.UUID, str] = {}
    for item in todo:
        failures.update(_apply(session, [item], now))
    return failures


def _set(session: Session, ident: uuid.UUID, **values: object) -> None:
    session.execute(update(WebhookDelivery).where(WebhookDelivery.id == ident).values(**values)
                    .execution_options(synchronize_session=False))


def _read(d: processing.Delivery) -> tuple[str | None, str | None, list[processing.TicketChange]]:
    """(failure reason, event name, ticket changes) of one delivery's payload."""
    try:
        event, changes = processing.ticket_changes(d)
    except processing.ProcessingError as exc:
        return str(exc), d.event, []
    except Exception as exc:  # an unexpected payload shape: record it, keep the batch going
        log.exception("processing delivery %s failed", d.id)
        return f"processing error: {type(exc).__name__}", d.event, []
    return None, event, changes
