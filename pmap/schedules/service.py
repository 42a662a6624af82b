"""The scheduler: start each due scheduled run (a sync, a webhook secret rotation) exactly once, however many
schedulers run.

Every ``interval`` seconds a scheduler reads the enabled integrations that have a schedule of each kind
(``sync_schedule``, ``webhook_rotation_schedule``), works out the schedule's latest due time, and claims it
by inserting a :class:`ScheduledRun` row for (integration, kind, due time). The row's unique constraint
is the guard: a second scheduler (another machine, a restarted process) inserting the same due time fails
and starts nothing, which Celery beat alone would not ensure. Only the latest due time is claimed, so a
scheduler that was down for a day starts one catch-up run, not one per missed slot; a due time before the
schedule was set is never claimed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pmap.core.cron import latest_due, next_due
from pmap.core.db import transaction, utcnow
from pmap.core.errors import PmapError
from pmap.integrations.models import Integration
from pmap.schedules.models import ScheduledRun

log = logging.getLogger("pmap.schedules")

KIND_SYNC = "sync"
KIND_WEBHOOK_ROTATION = "webhook_rotation"

#: Each kind's schedule column and the column saying since when it applies.
SCHEDULES: dict[str, tuple[Any, Any]] = {
    KIND_SYNC: (Integration.sync_schedule, Integration.sync_schedule_since),
    KIND_WEBHOOK_ROTATION: (Integration.webhook_rotation_schedule, Integration.webhook_rotation_schedule_since),
}

#: Starts the run of (integration id, organization id): returns its job id (None for work done at once);
#: raises a PmapError (a sync already running, the integration disabled) when it starts nothing.
Submit = Callable[[uuid.UUID, uuid.UUID], uuid.UUID | None]
SubmitSync = Submit


@dataclass(slots=True)
class Tick:
    """What one pass of the scheduler did."""

    started: list[tuple[uuid.UUID, uuid.UUID | None]] = field(default_factory=list)  # (integration, job)
    skipped: list[tuple[uuid.UUID, str]] = field(default_factory=list)  # (integration, why)
    taken: int = 0  # due times another pass or scheduler had already claimed


def next_sync_at(row: Integration, now: datetime | None = None) -> datetime | None:
    """When the integration's next scheduled sync is due (None: no schedule, or disabled)."""
    if not row.sync_schedule or not row.enabled:
        return None
    return next_due(row.sync_schedule, now or utcnow())


def run_due(sessions: sessionmaker[Session], submit: Submit | Mapping[str, Submit],
            now: datetime | None = None) -> Tick:
    """Claim and start every scheduled run due at ``now`` (``submit``: one per kind, or the sync one);
    one failure does not stop the others."""
    now = now or utcnow()
    submitters = submit if isinstance(submit, Mapping) else {KIND_SYNC: submit}
    tick = Tick()
    for kind, start in submitters.items():
        _run_kind(sessions, kind, start, now, tick)
    return tick


def _run_kind(sessions: sessionmaker[Session], kind: str, submit: Submit, now: datetime, tick: Tick) -> None:
    schedule_column, since_column = SCHEDULES[kind]
    with sessions() as session:
        rows = session.execute(
            select(Integration.id, Integration.organization_id, schedule_column, since_column)
            .where(Integration.enabled.is_(True), schedule_column.is_not(None))).all()
    for integration_id, organization_id, schedule, since in rows:
        if not schedule:
            continue
        try:
            due = latest_due(schedule, now)
        except Exception:  # a stored expression that no longer parses is skipped, never fatal
            log.exception("integration %s: %s schedule %r cannot be evaluated", integration_id, kind, schedule)
            continue
        if since is not None and due < since:
            continue
        run_id = _claim(sessions, integration_id, organization_id, kind, due)
        if run_id is None:
            tick.taken += 1
            continue
        try:
            job_id = submit(integration_id, organization_id)
        except PmapError as exc:
            _record(sessions, run_id, skipped=exc.message[:300])
            tick.skipped.append((integration_id, exc.message))
            log.info("scheduled %s of integration %s due %s started nothing: %s", kind, integration_id, due,
                     exc.message)
        except Exception:
            _record(sessions, run_id, skipped=f"the {kind} could not be started (logged)")
            tick.skipped.append((integration_id, f"the {kind} could not be started"))
            log.exception("scheduled %s of integration %s due %s could not be started", kind, integration_id, due)
        else:
            _record(sessions, run_id, job_id=job_id)
            tick.started.append((integration_id, job_id))
            log.info("scheduled %s of integration %s due %s started (job %s)", kind, integration_id, due, job_id)


def _claim(sessions: sessionmaker[Session], integration_id: uuid.UUID, organization_id: uuid.UUID, kind: str,
           due: datetime) -> uuid.UUID | None:
    """The new run's id, or None when this due time was already claimed (here or by another scheduler)."""
    run = ScheduledRun(organization_id=organization_id, integration_id=integration_id, kind=kind,
                       due_at=due)
    try:
        with transaction(sessions) as session:
            session.add(run)
    except IntegrityError:
        return None  # the unique (integration, kind, due time) row exists; or the integration just went
    return run.id


def _record(sessions: sessionmaker[Session], run_id: uuid.UUID, *, job_id: uuid.UUID | None = None,
            skipped: str | None = None) -> None:
    with transaction(sessions) as session:
        run = session.get(ScheduledRun, run_id)
        if run is not None:
            run.job_id, run.skipped = job_id, skipped


class Scheduler:
    """A background thread running :func:`run_due` every ``interval`` seconds until shut down, and each
    ``periodic`` task (name -> (every seconds, task)) once its period has passed in this process. A periodic
    task must be harmless to run in several processes (the ticket reconcile only reads trackers' states)."""

    def __init__(self, sessions: sessionmaker[Session], submit: Mapping[str, Submit], *, interval: float,
                 periodic: Mapping[str, tuple[float, Callable[[], object]]] | None = None) -> None:
        self._sessions = sessions
        self._submit = submit
        self._interval = interval
        self._periodic = dict(periodic or {})
        self._last_run: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start ticking (the first pass runs at once)."""
        self._thread = threading.Thread(target=self._loop, name="pmap-scheduler", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop after the current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                run_due(self._sessions, self._submit)
            except Exception:  # a database hiccup must not end the scheduler; the next pass retries
                log.exception("scheduler pass failed")
            self._run_periodic()
            self._stop.wait(self._interval)

    def _run_periodic(self) -> None:
        for name, (every, task) in self._periodic.items():
            now = time.monotonic()  # a period of real time: not a wait a test replaces
            if now - self._last_run.get(name, -every) < every:
                continue
            self._last_run[name] = now
            try:
                task()
            except Exception:
                log.exception("periodic task %s failed", name)
