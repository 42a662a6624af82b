"""Deliveries beyond the receiver's budgets: counted per integration and written as one summary.

A delivery that fails verification beyond ``PMAP_WEBHOOK_FAILED_RATE_PER_MINUTE`` (per source address
or per integration), and a verified one refused beyond ``PMAP_WEBHOOK_RATE_PER_MINUTE``, costs no
write of its own: it is counted here, and so is the audit event of the decrypt its verification
needed. At most :data:`FLUSH_SECONDS` after the first one, a timer writes, per integration, one
``rejected`` delivery row whose ``attempts`` is the number of failures it stands for (the webhook
status sums ``attempts``), and one audit event per kind of decrypt whose ``detail.count`` is the
number of decrypts. Every decrypt stays audited, while a flood costs a few writes per interval
instead of one per post. Shutdown writes what is left.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.engine import Engine

from pmap.core.db import new_id, write_transaction
from pmap.integrations.models import Integration
from pmap.webhooks import clock
from pmap.webhooks.models import Outcome, Verification
from pmap.webhooks.store import DELIVERIES, IntegrationRow, write_audit

log = logging.getLogger("pmap.webhooks.receiver")

FLUSH_SECONDS = 10.0
_INTEGRATIONS = cast(Table, Integration.__table__)
SUMMARY_NOTE = "decrypts for deliveries beyond the webhook budgets, audited together"


@dataclass(slots=True)
class _Tally:
    """What one integration's unrecorded deliveries add up to."""

    organization_id: uuid.UUID
    rejected: int = 0
    reason: str | None = None
    last_at: datetime | None = None
    audits: dict[tuple[Any, ...], dict[str, Any]] = field(default_factory=dict)  # kind of decrypt -> event


class Unrecorded:
    """Counts deliveries that are not written one by one; :meth:`flush` writes the summaries."""

    def __init__(self, engine: Engine, flush_seconds: float | None = None,
                 seal: Callable[[], None] | None = None) -> None:
        self._engine = engine
        self._seal = seal  # the audit chain's sealer, run after each summary write
        self._flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self._lock = threading.Lock()
        self._tallies: dict[uuid.UUID, _Tally] = {}
        self._timer: threading.Timer | None = None
        self._closed = False

    def add(self, row: IntegrationRow, audit_rows: list[dict[str, Any]], reason: str | None) -> None:
        """Count one delivery to ``row`` and its decrypt audit events; ``reason`` None: it verified
        but was over the verified budget (no delivery row is due for it)."""
        with self._lock:
            tally = self._tallies.get(row.id)
            if tally is None:
                tally = self._tallies[row.id] = _Tally(row.organization_id)
            if reason is not None:
                tally.rejected += 1
                tally.reason, tally.last_at = reason, clock.now()
            for event in audit_rows:
                kind = (event["actor"], event["action"], event["purpose"], event["outcome"])
                kept = tally.audits.get(kind)
                if kept is None:
                    tally.audits[kind] = {**event, "detail": {**event["detail"], "count": 1, "note": SUMMARY_NOTE}}
                else:
                    kept["detail"]["count"] += 1
                    kept["created_at"] = event["created_at"]
            if self._timer is None and not self._closed:
                self._timer = threading.Timer(self._flush_seconds, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        """Write every summary now (the timer calls it; so do shutdown and tests)."""
        with self._lock:
            tallies, self._tallies = self._tallies, {}
            timer, self._timer = self._timer, None
        if timer is not None and timer is not threading.current_thread():
            timer.cancel()
        if not tallies:
            return
        try:
            _write(self._engine, tallies)
        except Exception:  # a lost summary must not take the timer thread or a shutdown down
            log.exception("writing the summary of %d unrecorded webhook deliveries failed",
                          sum(t.rejected for t in tallies.values()))
            return
        if self._seal is not None:
            self._seal()
        for integration_id, tally in tallies.items():
            if tally.rejected:
                log.warning("%d webhook deliveries to integration %s failed verification beyond the failed "
                            "budget (counted, not recorded one by one)", tally.rejected, integration_id)

    def close(self) -> None:
        """Write what is left and start no more timers."""
        with self._lock:
            self._closed = True
        self.flush()


def _write(engine: Engine, tallies: dict[uuid.UUID, _Tally]) -> None:
    with write_transaction(engine) as conn:
        # an integration deleted meanwhile takes its deliveries with it; its audit events stay
        live = set(conn.scalars(select(_INTEGRATIONS.c.id).where(_INTEGRATIONS.c.id.in_(list(tallies)))))
        rows = [_summary_row(integration_id, tally) for integration_id, tally in tallies.items()
                if tally.rejected and integration_id in live]
        if rows:
            conn.execute(insert(DELIVERIES), rows)
        write_audit(conn, [event for tally in tallies.values() for event in tally.audits.values()])


def _summary_row(integration_id: uuid.UUID, tally: _Tally) -> dict[str, Any]:
    reason = (f"{tally.rejected} deliveries failed verification beyond the failed budget; counted, not "
              f"recorded one by one (last: {tally.reason})")
    return {"id": new_id(), "organization_id": tally.organization_id, "integration_id": integration_id,
            "dedupe_key": None, "delivery_id": None, "event": None, "outcome": Outcome.REJECTED.value,
            "reason": reason[:300], "verification": Verification.FAILED.value, "secret_slot": None,
            "content_type": None, "body": None, "size": 0, "attempts": tally.rejected,
            "created_at": tally.last_at or clock.now(), "processed_at": None}
