"""The scheduler starts each due scheduled sync once: not twice for two schedulers, not for the past, not
for a disabled integration, and one failure does not stop the others."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from pmap.core.db import transaction
from pmap.core.errors import Conflict
from pmap.integrations.models import Integration
from pmap.schedules.models import ScheduledRun
from pmap.schedules.service import Scheduler, next_sync_at, run_due
from tests.conftest import Api

NOON = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Submitted:
    """A stand-in for the sync queue: records what the scheduler asked to start."""

    def __init__(self, refuse: set[uuid.UUID] | None = None) -> None:
        self.calls: list[uuid.UUID] = []
        self.refuse = refuse or set()
        self._lock = threading.Lock()

    def __call__(self, integration_id: uuid.UUID, organization_id: uuid.UUID) -> uuid.UUID:
        with self._lock:
            self.calls.append(integration_id)
        if integration_id in self.refuse:
            raise Conflict("a sync of this integration is running (job 1234)")
        return uuid.uuid4()


def _integration(api: Api, schedule: str | None, *, since: datetime = NOON, enabled: bool = True) -> uuid.UUID:
    h = api.token(role="operator")
    r = api.client.post("/api/v1/integrations", headers=h, json={
        "name": f"t-{uuid.uuid4().hex[:8]}", "vendor": "tenable_vm", "connection": {},
        "credentials": {"access_key": "a" * 20, "secret_key": "b" * 20}})
    assert r.status_code == 201, r.text
    iid = uuid.UUID(r.json()["id"])
    with transaction(api.state.sessions) as s:
        row = s.get_one(Integration, iid)
        row.sync_schedule, row.sync_schedule_since, row.enabled = schedule, since, enabled
    return iid


def _runs(api: Api, iid: uuid.UUID) -> list[ScheduledRun]:
    with api.state.sessions() as s:
        return list(s.scalars(select(ScheduledRun).where(ScheduledRun.integration_id == iid)
                              .order_by(ScheduledRun.due_at)))


def test_a_due_sync_starts_once_and_the_next_due_time_starts_again(api: Api) -> None:
    iid = _integration(api, "*/5 * * * *")
    submit = Submitted()
    first = run_due(api.state.sessions, submit, NOON + timedelta(minutes=5, seconds=20))
    assert [i for i, _ in first.started] == [iid]
    again = run_due(api.state.sessions, submit, NOON + timedelta(minutes=5, seconds=40))
    assert again.started == [] and again.taken == 1 and submit.calls == [iid]
    run_due(api.state.sessions, submit, NOON + timedelta(minutes=10, seconds=1))
    runs = _runs(api, iid)
    assert [r.due_at for r in runs] == [NOON + timedelta(minutes=5), NOON + timedelta(minutes=10)]
    assert all(r.job_id is not None and r.skipped is None for r in runs) and submit.calls == [iid, iid]


def test_two_schedulers_at_the_same_moment_start_a_due_sync_once(api: Api) -> None:
    ids = [_integration(api, "* * * * *") for _ in range(3)]
    submit = Submitted()
    now = NOON + timedelta(minutes=1, seconds=5)
    barrier = threading.Barrier(4)

    def scheduler() -> None:
        barrier.wait()
        run_due(api.state.sessions, submit, now)

    threads = [threading.Thread(target=scheduler) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(submit.calls) == sorted(ids)  # each once, whichever scheduler won it
    with api.state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ScheduledRun)) == 3


def test_nothing_due_before_the_schedule_was_set_and_nothing_for_a_disabled_integration(api: Api) -> None:
    weekly = _integration(api, "0 3 * * 1", since=NOON)  # last due 03:00 today, before it was set at noon
    off = _integration(api, "* * * * *", enabled=False)
    none = _integration(api, None)
    submit = Submitted()
    tick = run_due(api.state.sessions, submit, NOON + timedelta(minutes=3))
    assert submit.calls == [] and tick.started == []
    assert _runs(api, weekly) == _runs(api, off) == _runs(api, none) == []
    with api.state.sessions() as s:
        assert next_sync_at(s.get_one(Integration, weekly), NOON) == datetime(2026, 12, 14, 3, 0, tzinfo=UTC)
        assert next_sync_at(s.get_one(Integration, off), NOON) is None


def test_a_refused_start_is_recorded_and_the_others_still_start(api: Api) -> None:
    busy, free = _integration(api, "* * * * *"), _integration(api, "* * * * *")
    submit = Submitted(refuse={busy})
    tick = run_due(api.state.sessions, submit, NOON + timedelta(minutes=1))
    assert [i for i, _ in tick.started] == [free] and [i for i, _ in tick.skipped] == [busy]
    [run] = _runs(api, busy)
    assert run.job_id is None and run.skipped is not None and "running" in run.skipped
    # the refused due time is not retried (the running sync covers it); the next one is
    tick = run_due(api.state.sessions, Submitted(), NOON + timedelta(minutes=1, seconds=30))
    assert tick.started == [] and tick.taken == 2


def test_a_scheduler_down_for_hours_starts_one_catch_up_sync_not_one_per_missed_slot(api: Api) -> None:
    iid = _integration(api, "*/5 * * * *")
    submit = Submitted()
    run_due(api.state.sessions, submit, NOON + timedelta(hours=3, minutes=2))
    assert submit.calls == [iid]
    assert [r.due_at for r in _runs(api, iid)] == [NOON + timedelta(hours=3)]


def test_the_scheduler_thread_runs_due_work_and_periodic_tasks_and_survives_a_failing_one(api: Api) -> None:
    iid = _integration(api, "* * * * *", since=datetime.now(UTC) - timedelta(minutes=2))
    submit = Submitted()
    ran: list[str] = []

    def failing() -> None:
        ran.append("failing")
        raise RuntimeError("a tracker was down")

    scheduler = Scheduler(api.state.sessions, {"sync": submit}, interval=0.01,
                          periodic={"failing": (0.01, failing), "counting": (0.01, lambda: ran.append("counting"))})
    scheduler.start()
    deadline = time.monotonic() + 10
    while ran.count("counting") < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.shutdown()
    assert ran.count("counting") >= 3 and ran.count("failing") >= 3  # a failing task does not stop the others
    assert submit.calls == [iid]  # the due sync, once, however many passes ran
