"""Retention of webhook deliveries: a payload is kept for a set number of days, then dropped.

A delivery's body is the vendor's data (issue titles and descriptions, user names, repository
content) and PMAP needs it only to process the delivery and, for a while, to show what arrived.
After ``PMAP_WEBHOOK_RETENTION_DAYS`` (default 30):

- the body of a finished delivery (``processed``, ``failed``, ``duplicate``) is cleared; the row stays,
  because its de-duplication key is what refuses a replay of that delivery later (GitHub's and several
  other vendors' signatures carry no timestamp, so a captured delivery would verify again forever);
- rows that hold no de-duplication key (rejected attempts, acknowledged duplicates) are deleted: they
  carry nothing a replay check needs;
- deliveries still ``accepted`` are left alone: the processor has not finished with them.

The webhook processor prunes when its worker starts (a stored delivery starts it when pruning is
due), at most once an hour (:data:`PRUNE_EVERY`); ``pmapctl webhooks prune`` does it on demand (from
cron, say, for a PMAP that receives no deliveries for long stretches).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete, update
from sqlalchemy.orm import Session

from pmap.webhooks.models import Outcome, WebhookDelivery

PRUNE_EVERY = timedelta(hours=1)
MAX_RETENTION_DAYS = 36_500  # a century: beyond it the cutoff leaves the calendar
_FINISHED = (Outcome.PROCESSED.value, Outcome.FAILED.value, Outcome.DUPLICATE.value)


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What one pruning pass did."""

    bodies_cleared: int
    rows_deleted: int


def prune_deliveries(session: Session, now: datetime, retention_days: int) -> PruneResult:
    """Clear old payloads and delete old key-less rows, in the caller's transaction."""
    if not 1 <= retention_days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention_days must be between 1 and {MAX_RETENTION_DAYS}")
    cutoff = now - timedelta(days=retention_days)
    d = WebhookDelivery
    # an UPDATE or DELETE answers a CursorResult, which carries the row count
    cleared = cast(CursorResult[Any], session.execute(
        update(d).where(d.created_at < cutoff, d.body.is_not(None), d.outcome.in_(_FINISHED))
        .values(body=None).execution_options(synchronize_session=False)))
    deleted = cast(CursorResult[Any], session.execute(
        delete(d).where(d.created_at < cutoff, d.dedupe_key.is_(None), d.outcome != Outcome.ACCEPTED.value)
        .execution_options(synchronize_session=False)))
    return PruneResult(int(cleared.rowcount or 0), int(deleted.rowcount or 0))
