"""The job engine with a broker: Celery over Redis or RabbitMQ (``PMAP_BROKER_URL``).

API processes only send task messages; ``pmapctl worker`` processes run them. A message carries ids only (a job
id, the id of the request that queued it, webhook delivery row ids): a worker reads everything else from the
database and resolves credentials itself, through the one decrypt path.

Delivery is at least once and acknowledged late: a worker acknowledges a message when its task returns, so a
worker killed mid-job (SIGKILL, a lost machine) leaves the message to be delivered again (RabbitMQ at once when
the connection drops; Redis after ``PMAP_BROKER_VISIBILITY_TIMEOUT``). The lease on the job's row
(:mod:`pmap.jobs.lease`) makes a second delivery harmless: it runs the job only when the first attempt is dead,
and comes back later when it is alive.

Each worker process builds its own runtime (database engine, keyring, runner) on its first task, after the fork:
nothing opened before a fork is shared with a child.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from celery import Celery
from celery.exceptions import Reject
from celery.signals import worker_process_init

from pmap.jobs.dispatch import Again, Execute, Requeue

log = logging.getLogger("pmap.jobs.broker")

RUN_JOB = "pmap.run_job"
PROCESS_DELIVERIES = "pmap.process_deliveries"
PERIODIC = "pmap.periodic"
#: queues, by their name after the deployment's namespace (PMAP_BROKER_NAMESPACE): jobs (imports, syncs), scans
#: (launches wait on their vendor for hours: workers can be set aside for them), webhooks (deliveries)
JOBS, SCANS, WEBHOOKS = "jobs", "scans", "webhooks"
_QUEUE_OF_KIND = {"scan": SCANS}


def queue_names(namespace: str) -> list[str]:
    """Every queue of a deployment."""
    return [f"{namespace}.{q}" for q in (JOBS, SCANS, WEBHOOKS)]


class WorkerRuntime(Protocol):
    """What a worker process runs tasks with (built by the entry layer, once per process)."""

    def execute(self, job_id: uuid.UUID, origin: str | None) -> Again | Requeue | None:
        """Run one delivery of a job (see :class:`pmap.jobs.dispatch.Execute`)."""

    def process_deliveries(self, ids: Sequence[uuid.UUID]) -> None:
        """Process accepted webhook deliveries by row id."""

    def periodic(self, name: str) -> None:
        """Run one pass of a periodic task the scheduler named (ticket reconcile, webhook maintenance)."""


_factory: Callable[[], WorkerRuntime] | None = None
_runtime: tuple[int, WorkerRuntime] | None = None
_runtime_lock = threading.Lock()


def install_worker(factory: Callable[[], WorkerRuntime]) -> None:
    """Set how a worker process builds its runtime (called before the worker starts, inherited by its children,
    each of which builds its own as soon as it starts: its first task does not pay for it)."""
    global _factory, _runtime
    _factory, _runtime = factory, None
    worker_process_init.connect(_build_at_start, weak=False)


def _build_at_start(**_: Any) -> None:
    try:
        _worker()
    except Exception:  # the first task tries again and fails with the reason, where it is seen
        log.exception("this worker process could not build its runtime")


def _worker() -> WorkerRuntime:
    """This process's runtime, built on first use after a fork."""
    global _runtime
    with _runtime_lock:
        if _runtime is None or _runtime[0] != os.getpid():
            if _factory is None:
                raise RuntimeError("this process is not a PMAP worker (pmapctl worker installs its runtime)")
            _runtime = (os.getpid(), _factory())
        return _runtime[1]


def redacted(url: str) -> str:
    """A broker URL without its password, for messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{host}"


def celery_app(broker_url: str, *, visibility_timeout: int, namespace: str = "pmap") -> Celery:
    """The Celery application of one broker, with PMAP's two tasks and at-least-once, late-acknowledged delivery."""
    app = Celery("pmap", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # acknowledged when the task returns: a killed worker's message is delivered again
        task_reject_on_worker_lost=True,  # a worker child killed mid-task: its message goes back, not acknowledged
        worker_prefetch_multiplier=1,  # a worker holds only what it runs: others take the rest
        task_ignore_result=True,  # the jobs table is the record: no result backend
        task_serializer="json", accept_content=["json"], result_serializer="json",
        task_default_queue=f"{namespace}.{JOBS}",
        task_create_missing_queues=True,
        broker_connection_retry_on_startup=True,
        # a request that queues a job waits at most about a second on a broker that does not answer: the job row
        # is written first, and the scheduler's sweep sends it again (pmap.jobs.lease.orphans)
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 0.5},
        broker_connection_timeout=2,
        broker_transport_options={"visibility_timeout": visibility_timeout},  # Redis only; RabbitMQ ignores it
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_redirect_stdouts=False,
        # no remote-control queue per worker (an exclusive queue named by host: two workers on one host would
        # collide); the jobs table is where jobs are watched and cancelled
        worker_enable_remote_control=False,  # PMAP configures its own logging (JSON in production): leave stderr alone
    )

    @app.task(name=RUN_JOB, bind=True, max_retries=None)
    def run_job(task: Any, job_id: str, origin: str | None = None) -> None:
        outcome = _worker().execute(uuid.UUID(job_id), origin)
        if isinstance(outcome, Requeue):  # this worker is stopping: back to the broker, unacknowledged
            raise Reject(requeue=True)
        if isinstance(outcome, Again):  # a live attempt holds it: look again when its lease would lapse
            raise task.retry(countdown=outcome.after)

    @app.task(name=PROCESS_DELIVERIES)
    def process_deliveries(ids: list[str]) -> None:
        _worker().process_deliveries([uuid.UUID(i) for i in ids])

    @app.task(name=PERIODIC)
    def periodic(name: str) -> None:
        _worker().periodic(name)

    return app


class CeleryDispatcher:
    """Sends each ready job to the broker; this process runs none."""

    runs_here = False

    def __init__(self, app: Celery, namespace: str = "pmap") -> None:
        self._app = app
        self._namespace = namespace

    @property
    def celery(self) -> Celery:
        """The Celery application (a worker runs it)."""
        return self._app

    def start(self, execute: Execute) -> None:
        """Nothing runs here: the workers run the jobs."""

    def dispatch(self, job_id: uuid.UUID, kind: str, origin: str | None = None, *, delay: float = 0.0) -> None:
        self._app.send_task(RUN_JOB, args=[str(job_id)], kwargs={"origin": origin},
                            queue=f"{self._namespace}.{_QUEUE_OF_KIND.get(kind, JOBS)}", countdown=delay or None)

    def send_deliveries(self, ids: Sequence[uuid.UUID]) -> None:
        """Have a worker process these accepted webhook deliveries."""
        self._app.send_task(PROCESS_DELIVERIES, args=[[str(i) for i in ids]], queue=f"{self._namespace}.{WEBHOOKS}")

    def send_periodic(self, name: str) -> None:
        """Have a worker run one pass of a periodic task (the scheduler's ticks)."""
        self._app.send_task(PERIODIC, args=[name], queue=f"{self._namespace}.{JOBS}")

    def ping(self) -> None:
        """Raise unless the broker accepts a connection (for /readyz)."""
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)

    def purge(self) -> None:
        """Delete this deployment's queues and what they hold (tests, and a deployment being removed)."""
        with self._app.connection_for_write() as conn:
            channel = conn.default_channel
            for queue in queue_names(self._namespace):
                try:
                    channel.queue_delete(queue)
                except Exception:  # never declared here: nothing to delete
                    channel = conn.channel()

    def shutdown(self) -> None:
        """Close the broker connections this process holds."""
        self._app.close()
