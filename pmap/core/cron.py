"""Five-field cron expressions (minute hour day-of-month month day-of-week), evaluated in UTC.

Parsing and evaluation are cronsim's (the evaluator healthchecks.io runs); this module only insists on
exactly five fields (cronsim also takes a sixth, seconds field, which a schedule of PMAP does not offer) and
answers the two questions the scheduler asks: when was a schedule last due, and when is it next due.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

FIELDS = 5
MAX_LENGTH = 100
EXAMPLE = "0 3 * * 1 (Mondays at 03:00 UTC); */30 * * * * (every 30 minutes)"


class CronError(ValueError):
    """Not a five-field cron expression; the message says why (safe to show)."""


def check_cron(expression: str) -> str:
    """The expression with its whitespace normalized; :class:`CronError` unless it has five valid fields."""
    text = " ".join(expression.split())
    if not text or len(text) > MAX_LENGTH:
        raise CronError(f"a cron expression has 1 to {MAX_LENGTH} characters; e.g. {EXAMPLE}")
    fields = text.split(" ")
    if len(fields) != FIELDS:
        raise CronError(f"a cron expression has five fields (minute hour day-of-month month day-of-week), "
                        f"not {len(fields)}; e.g. {EXAMPLE}")
    try:
        CronSim(text, datetime.now(UTC))
    except CronSimError as exc:
        raise CronError(f"not a valid cron expression: {exc}; e.g. {EXAMPLE}") from None
    return text


def _minute(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


def latest_due(expression: str, now: datetime) -> datetime:
    """The last time at or before ``now`` the schedule was due (cron times are whole minutes)."""
    # cronsim's reverse iteration yields times strictly before its start: start one minute after now's minute
    return next(CronSim(expression, _minute(now) + timedelta(minutes=1), reverse=True))


def next_due(expression: str, after: datetime) -> datetime:
    """The first time strictly after ``after`` the schedule is due."""
    return next(CronSim(expression, after.astimezone(UTC)))
