"""Jobs on Celery workers: the API enqueues, two `pmapctl worker` processes run, one is killed with SIGKILL in the
middle of a sync, and the job still ends once, with every finding once; a cancel reaches a worker; `pmapctl
scheduler` queues a due sync; a webhook delivery is processed on a worker; messages carry ids only. Real RabbitMQ
and Redis (the servers of this machine, ensured by `make test`), real PostgreSQL, the vendor sandbox over loopback
HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import func, select

from bench.common import free_port
from pmap.app import broker_dispatcher
from pmap.core.settings import Settings
from pmap.findings.models import Finding, Job
from pmap.webhooks.models import WebhookDelivery
from pmap_sandbox.server import SandboxServer
from tests.conftest import Api, canary
from tests.observability.conftest import value
from tests.tickets.support import finding_status, link, open_finding, send, tracker

from .conftest import integration, start_sync, unique

pytestmark = pytest.mark.postgres

RABBITMQ = os.environ.get("PMAP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS = os.environ.get("PMAP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
#: enough findings that a sync runs for seconds: long enough to kill its worker in the middle
MANY = 40_000
LEASE = 3.0


@pytest.fixture(params=["postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """These tests run on PostgreSQL only: workers on other machines need a database server."""
    from tests.conftest import _truncate

    url: str = request.getfixturevalue("pg_schema_url")
    _truncate(url)
    return url


class Workers:
    """`pmapctl worker` processes on one broker and one database, each in its own process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, concurrency: int = 1, *options: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"worker-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", "worker", f"--concurrency={concurrency}", *options],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once, as a lost machine would."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)

    def output(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("worker-*.log")))


@pytest.fixture(params=["rabbitmq", "redis"])
def brokered(request: pytest.FixtureRequest, settings: Settings, make_api: Callable[..., Api],
             tmp_path: Path) -> Iterator[tuple[Api, Workers]]:
    """The API with a broker (it only enqueues) and a way to start workers on the same broker and database."""
    url = RABBITMQ if request.param == "rabbitmq" else REDIS
    namespace = f"t{uuid.uuid4().hex[:12]}"  # this test's own queues: nothing of another test's run reaches it
    common = {"broker_url": SecretStr(url), "broker_namespace": namespace, "job_lease_seconds": LEASE,
              "broker_visibility_timeout": 10}
    api = make_api(**common)
    assert settings.platform_key is not None and settings.database_url is not None
    env = {**os.environ, "PMAP_ENV": "development", "PMAP_DATABASE_URL": settings.database_url,
           "PMAP_PLATFORM_KEY": settings.platform_key.get_secret_value(), "PMAP_DATA_DIR": str(tmp_path / "worker"),
           "PMAP_BROKER_URL": url, "PMAP_BROKER_NAMESPACE": namespace, "PMAP_JOB_LEASE_SECONDS": str(LEASE),
           "PMAP_BROKER_VISIBILITY_TIMEOUT": "10", "PMAP_LOG_LEVEL": "INFO"}
    env.pop("PMAP_BOOTSTRAP_ADMIN_TOKEN", None)
    logs = Path(os.environ.get("PMAP_TEST_WORKER_LOGS") or tmp_path / "logs")
    logs.mkdir(exist_ok=True)
    workers = Workers(env, logs)
    try:
        yield api, workers
    finally:
        workers.stop()
        broker_dispatcher(api.state.settings.model_copy(update=common)).purge()  # type: ignore[union-attr]
        if url.startswith("redis"):  # kombu keeps its bindings beside a deleted queue
            client = redis.Redis.from_url(url)
            for key in client.scan_iter(f"*{namespace}.*"):
                client.delete(key)
            client.close()


@pytest.fixture
def slow_vendor(sandbox: SandboxServer) -> Iterator[None]:
    """Every vendor request answered 0.3 s late, so a sync of MANY findings runs for seconds whatever the machine's
    speed: long enough to be killed or cancelled in the middle."""
    httpx.post(f"{sandbox.base_url}/_sandbox/latency", json={"seconds": 0.3}, timeout=10).raise_for_status()
    try:
        yield
    finally:
        httpx.post(f"{sandbox.base_url}/_sandbox/latency", json={"seconds": 0}, timeout=10).raise_for_status()


def _job(api: Api, job_id: str) -> Job:
    with api.state.sessions() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        session.expunge(job)
        return job


def _wait(api: Api, job_id: str, until: Callable[[Job], bool], seconds: float, workers: Workers) -> Job:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = _job(api, job_id)
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} never got there: {_job(api, job_id).__dict__}\n{workers.output()}")


def _findings(api: Api, integration_id: str) -> tuple[int, int]:
    """(findings, distinct identities) of the integration."""
    with api.state.sessions() as session:
        row = session.execute(select(func.count(), func.count(func.distinct(Finding.fingerprint))).where(
            Finding.integration_id == uuid.UUID(integration_id))).one()
        return int(row[0]), int(row[1])


def test_the_api_only_enqueues_and_a_worker_runs_the_sync(brokered: tuple[Api, Workers], sandbox: SandboxServer,
                                                          seed: Any) -> None:
    api, workers = brokered
    headers = api.token(role="operator")
    seed("tenable_vm", 50, fixed=[1])
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    resp = start_sync(api, headers, iid)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job"]["id"]
    time.sleep(1.0)
    assert _job(api, job_id).status == "queued", "no worker yet: the API process runs nothing itself"
    workers.start()
    job = _wait(api, job_id, lambda j: j.status in ("succeeded", "failed"), 90, workers)
    assert job.status == "succeeded", (job.error, workers.output())
    assert job.attempts == 1 and job.result is not None and job.result["created"] == 50
    assert _findings(api, iid) == (50, 50)
    body = api.client.get(f"/api/v1/jobs/{job_id}", headers=headers).json()
    assert body["attempts"] == 1 and body["integration_id"] == iid and body["kind"] == "sync"
    assert api.client.get("/readyz").json()["checks"]["broker"]["status"] == "ok"


def test_a_workers_metrics_port_sums_its_pool_processes(brokered: tuple[Api, Workers], sandbox: SandboxServer,
                                                        seed: Any) -> None:
    api, workers = brokered
    if "amqp" not in workers.env["PMAP_BROKER_URL"]:
        pytest.skip("one broker is enough: the pool processes count the same on either")
    headers = api.token(role="operator")
    seed("tenable_vm", 30)
    credentials = [(unique(), unique("key")) for _ in range(4)]
    iids = [integration(api, headers, sandbox, "tenable_vm", {"access_key": a, "secret_key": k})
            for a, k in credentials]
    port = free_port()
    workers.start(2, f"--metrics-port={port}")
    deadline = time.monotonic() + 60
    while True:  # the port answers once the worker has prepared its counting directory
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5, trust_env=False).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, workers.output()
        time.sleep(0.2)
    [counting] = Path(workers.env["PMAP_DATA_DIR"]).glob("worker-metrics-*")
    job_ids = [start_sync(api, headers, iid).json()["job"]["id"] for iid in iids]
    done = [_wait(api, job_id, lambda j: j.status in ("succeeded", "failed"), 120, workers) for job_id in job_ids]
    assert [j.status for j in done] == ["succeeded"] * 4, [(j.status, j.error) for j in done]
    runners = {j.runner for j in done}
    scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10, trust_env=False)
    assert scraped.status_code == 200, workers.output()
    text = scraped.text
    # every job of both pool processes, summed (a job that ended counted once, in the process that ran it)
    assert value(text, "pmap_jobs_finished_total", kind="sync", outcome="succeeded") == 4, (runners, text)
    assert value(text, "pmap_job_duration_seconds_count", kind="sync", outcome="succeeded") == 4
    assert value(text, "pmap_credential_decrypts_total", purpose="sync", outcome="success") >= 4
    assert value(text, "pmap_data_keys_total", provider="keyring", source="unwrapped") >= 4
    assert 'pmap_report_parser_faults_total{format="nessus"} 0.0' in text  # each format's series, none so far
    # the API process only enqueued: its own /metrics ran none of them
    own = api.client.get("/metrics").text
    assert value(own, "pmap_jobs_finished_total", kind="sync", outcome="succeeded") == 0
    for secret in [v for pair in credentials for v in pair] + iids + job_ids:
        assert secret not in text
    workers.stop()
    assert not counting.exists(), "the counting files go with the worker"


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_worker_without_processes_opens_hsm_envelopes_after_its_preflight(
        pool: str, brokered: tuple[Api, Workers], make_api: Callable[..., Api], sandbox: SandboxServer, seed: Any,
        tmp_path: Path) -> None:
    """With --pool threads or solo the jobs run in the process that ran the pre-flight (which opened, proved and
    closed an HSM session): the worker's runtime opens its own there and unwraps (counted at its metrics port)."""
    from bench.softhsm import available, make_token

    api, workers = brokered
    if "amqp" not in workers.env["PMAP_BROKER_URL"]:
        pytest.skip("one broker is enough: the HSM session does not depend on it")
    if not available():
        pytest.skip("SoftHSM2 is missing: `make test` installs it")
    label = f"kek-worker-{uuid.uuid4().hex[:6]}"
    token = make_token(tmp_path / "softhsm", label)
    hsm_api = make_api(broker_url=SecretStr(workers.env["PMAP_BROKER_URL"]),
                       broker_namespace=workers.env["PMAP_BROKER_NAMESPACE"], **token.settings(label))
    headers = hsm_api.token(role="operator")
    seed("tenable_vm", 10)
    iid = integration(hsm_api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    with hsm_api.state.sessions() as session:
        from pmap.integrations.models import Integration

        row = session.get(Integration, uuid.UUID(iid))
        assert row is not None and row.encrypted_credentials is not None
        assert (row.encrypted_credentials["kp"], row.encrypted_credentials["kek"]) == ("pkcs11", label)
    port = free_port()
    workers.env.update(token.env(label))
    workers.start(2, f"--pool={pool}", f"--metrics-port={port}")
    job_id = start_sync(hsm_api, headers, iid).json()["job"]["id"]
    job = _wait(hsm_api, job_id, lambda j: j.status in ("succeeded", "failed"), 90, workers)
    assert job.status == "succeeded", (job.error, workers.output())
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10, trust_env=False).text
    assert value(text, "pmap_data_keys_total", provider="pkcs11", source="unwrapped") >= 1, text
    assert value(text, "pmap_data_keys_total", provider="pkcs11", source="failed") == 0


def test_a_worker_killed_mid_sync_leaves_the_job_to_another(brokered: tuple[Api, Workers], sandbox: SandboxServer,
                                                            seed: Any, slow_vendor: None) -> None:
    api, workers = brokered
    headers = api.token(role="operator")
    seed("tenable_vm", MANY, fixed=[0, 1, 2])
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    workers.start()
    workers.start()
    resp = start_sync(api, headers, iid)
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job"]["id"]
    # one worker is importing (its heartbeat has written progress): kill it and its pool, SIGKILL
    running = _wait(api, job_id, lambda j: j.status == "running" and (j.progress or {}).get("findings", 0) > 0,
                    120, workers)
    assert running.attempts == 1
    holder = os.getpgid(int(running.runner.rpartition(":")[2]))  # the worker whose pool process runs it
    [victim] = [p for p in workers.procs if p.pid == holder]
    workers.kill(victim)
    # the other worker gets the unacknowledged message again and takes the job over
    job = _wait(api, job_id, lambda j: j.status in ("succeeded", "failed"), 240, workers)
    assert job.status == "succeeded", (job.error, workers.output())
    assert job.attempts == 2, "every start counts, the killed one included"
    assert job.result is not None and job.result["parsed"] == MANY and job.result["created"] == MANY
    assert _findings(api, iid) == (MANY, MANY), "no finding twice: the killed attempt's import rolled back"
    assert "taking over from" in workers.output()


def test_a_running_job_on_a_worker_is_cancelled_from_the_api(brokered: tuple[Api, Workers], sandbox: SandboxServer,
                                                             seed: Any, slow_vendor: None) -> None:
    api, workers = brokered
    headers = api.token(role="operator")
    seed("tenable_vm", MANY)
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    workers.start()
    job_id = start_sync(api, headers, iid).json()["job"]["id"]
    _wait(api, job_id, lambda j: j.status == "running" and (j.progress or {}).get("findings", 0) > 0, 120, workers)
    asked = api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=headers)
    assert asked.status_code == 200 and asked.json()["status"] == "running"  # another process runs it: it hears
    job = _wait(api, job_id, lambda j: j.status in ("succeeded", "failed"), 120, workers)
    assert job.status == "failed" and job.error is not None and job.error["code"] == "job_cancelled", job.error
    assert _findings(api, iid) == (0, 0), "a cancelled sync keeps nothing"


def test_broker_messages_carry_ids_never_a_secret(settings: Settings, make_api: Callable[..., Api],
                                                  sandbox: SandboxServer, seed: Any) -> None:
    namespace = f"t{uuid.uuid4().hex[:12]}"
    api = make_api(broker_url=SecretStr(REDIS), broker_namespace=namespace)  # no worker: messages wait in Redis
    headers = api.token(role="operator")
    seed("tenable_vm", 5)
    access, secret = canary("A"), canary("S")
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": access, "secret_key": secret})
    job_id = start_sync(api, headers, iid).json()["job"]["id"]
    client = redis.Redis.from_url(REDIS)
    try:
        raw = [m if isinstance(m, bytes) else str(m).encode() for m in client.lrange(f"{namespace}.jobs", 0, -1)]
        assert len(raw) == 1
        message = json.loads(raw[0])
        body = json.loads(base64.b64decode(message["body"]))
        assert body[0] == [job_id] and set(body[1]) == {"origin"}, body  # the job's id; the request id
        everything = raw[0] + base64.b64decode(message["body"])
        for value in (access, secret):
            assert value.encode() not in everything
    finally:
        for key in client.scan_iter(f"*{namespace}.*"):
            client.delete(key)
        client.close()


def test_pmapctl_scheduler_queues_a_due_sync_that_a_worker_runs(brokered: tuple[Api, Workers],
                                                                 sandbox: SandboxServer, seed: Any) -> None:
    api, workers = brokered
    if "amqp" not in workers.env["PMAP_BROKER_URL"]:
        pytest.skip("one broker is enough for the scheduler's part: it only sends")
    headers = api.token(role="operator")
    seed("tenable_vm", 12)
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    patched = api.client.patch(f"/api/v1/integrations/{iid}", headers=headers, json={"sync_schedule": "* * * * *"})
    assert patched.status_code == 200, patched.text
    workers.start()
    log = (workers.logs / "scheduler.log").open("wb")
    scheduler = subprocess.Popen([sys.executable, "-m", "pmap.cli", "scheduler"],
                                 env={**workers.env, "PMAP_SCHEDULER_INTERVAL": "1"}, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    workers.procs.append(scheduler)  # stopped with the workers
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        with api.state.sessions() as session:
            jobs = list(session.scalars(select(Job).where(Job.integration_id == uuid.UUID(iid))))
        if jobs and jobs[0].status in ("succeeded", "failed"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError("no scheduled sync ended:\n" + workers.output()
                             + (workers.logs / "scheduler.log").read_text(errors="replace")[-2000:])
    assert len(jobs) == 1 and jobs[0].status == "succeeded", (jobs[0].error, workers.output())
    assert jobs[0].actor == "system:scheduler" and jobs[0].result is not None and jobs[0].result["created"] == 12


def test_a_webhook_delivery_is_processed_by_a_worker(brokered: tuple[Api, Workers]) -> None:
    api, workers = brokered
    if "amqp" not in workers.env["PMAP_BROKER_URL"]:
        pytest.skip("one broker is enough: the receiver only sends the delivery's row id")
    _h, iid, secret = tracker(api, "github")
    finding = open_finding(api, iid)
    link(api, iid, "acme/webapp#5", finding)
    workers.start()
    doc = {"action": "closed", "issue": {"number": 5, "state": "closed"}, "repository": {"full_name": "acme/webapp"}}
    assert send(api, iid, "github", secret, doc, "issues", f"gh-{uuid.uuid4().hex}") == 202
    deadline = time.monotonic() + 90
    while finding_status(api, finding) != "resolved" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert finding_status(api, finding) == "resolved", workers.output()
    with api.state.sessions() as session:
        [row] = session.scalars(select(WebhookDelivery).where(WebhookDelivery.integration_id == uuid.UUID(iid)))
        assert row.outcome == "processed"
    runtime = getattr(api.app.state, "webhook_runtime", None)
    assert runtime is not None and runtime.processor._thread is None, "the API process processed nothing itself"


def test_a_broker_that_does_not_answer_leaves_the_job_queued_not_a_500(make_api: Callable[..., Api],
                                                                       sandbox: SandboxServer, seed: Any,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    api = make_api(broker_url=SecretStr("amqp://guest:guest@127.0.0.1:9//"), broker_namespace="tnone")
    headers = api.token(role="operator")
    seed("tenable_vm", 3)
    iid = integration(api, headers, sandbox, "tenable_vm", {"access_key": unique(), "secret_key": unique("key")})
    resp = start_sync(api, headers, iid)
    assert resp.status_code == 202, resp.text
    assert _job(api, resp.json()["job"]["id"]).status == "queued"  # the row is the queue: the sweep sends it again
    assert any("could not be sent to its workers" in r.getMessage() for r in caplog.records)
    assert "guest:guest" not in caplog.text
    ready = api.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["broker"]["status"] != "ok"
    assert "guest" not in ready.text  # a failed check is named by its class, never by its URL
