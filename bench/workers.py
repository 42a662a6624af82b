"""Issue 12 benchmark: job throughput of many small syncs on 1, 2 and 4 `pmapctl worker` processes.

The API (in this process, with PMAP_BROKER_URL set: it only enqueues) queues one incremental sync for each of
``--syncs`` Semgrep integrations, each pulling a small seeded data set from the vendor sandbox, which answers every
request ``--latency`` seconds late (a vendor far away or busy: the vendor is the bottleneck, as it is for most
syncs). Each round starts N worker processes (``--concurrency 1`` each) on RabbitMQ and a fresh PostgreSQL schema,
queues every sync, and times until the last job has succeeded.

The bare baseline, measured in the same run: the same number of syncs' vendor requests made one after the other by
a plain HTTP client (what one worker cannot beat), and the ideal N-way split of it.

Target (issue 12): 2 workers at least 1.6x one on 2 cores when the vendor is the bottleneck.

    python -m bench.workers [--syncs 40] [--findings 30] [--latency 0.3] [--broker amqp://guest:guest@127.0.0.1//]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

VENDOR, SLUG = "semgrep", "example-org"


def _round(sandbox_app: Any, base: str, workers: int, syncs: int, findings: int, broker: str,
           tmp: Path) -> float:
    """Seconds for ``syncs`` syncs on ``workers`` worker processes."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr
    from sqlalchemy import select

    from bench.common import pg_schema
    from pmap.app import broker_dispatcher, create_app
    from pmap.auth.principal import Role
    from pmap.auth.service import get_or_create_org, issue_token
    from pmap.core.crypto import generate_key
    from pmap.core.db import transaction
    from pmap.core.settings import Settings
    from pmap.findings.models import Job
    from pmap.migrations import upgrade
    from pmap_sandbox.scanners import _common

    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with pg_schema() as url:
        upgrade(url)
        key = generate_key()
        settings = Settings(env="development", database_url=url, data_dir=tmp / f"api-{workers}", platform_key=key,
                            scheduler_enabled=False, broker_url=SecretStr(broker), broker_namespace=namespace)
        env = {**os.environ, "PMAP_ENV": "development", "PMAP_DATABASE_URL": url, "PMAP_PLATFORM_KEY": key,
               "PMAP_DATA_DIR": str(tmp / f"worker-{workers}"), "PMAP_BROKER_URL": broker,
               "PMAP_BROKER_NAMESPACE": namespace, "PMAP_LOG_LEVEL": "WARNING"}
        procs = [subprocess.Popen([sys.executable, "-m", "pmap.cli", "worker", "--concurrency=1"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                 for _ in range(workers)]
        try:
            with TestClient(create_app(settings)) as client:
                state = client.app.state.pmap  # type: ignore[attr-defined]
                with transaction(state.sessions) as session:
                    token = issue_token(session, get_or_create_org(session, "bench"), Role.OPERATOR, "bench").token
                headers = {"Authorization": f"Bearer {token}"}
                ids = []
                for i in range(syncs):
                    credential = f"bench-{workers}-{i}-{uuid.uuid4().int % 10**12:012d}"
                    _common.seed(sandbox_app, VENDOR, credential, count=findings)
                    r = client.post("/api/v1/integrations", headers=headers, json={
                        "name": f"s{i}", "vendor": VENDOR, "connection": {"base_url": base,
                                                                          "deployment_slug": SLUG},
                        "credentials": {"token": credential}})
                    r.raise_for_status()
                    ids.append(r.json()["id"])
                def run(batch: list[str]) -> list[str]:
                    jobs = [client.post(f"/api/v1/integrations/{i}/sync", headers=headers).json()["job"]["id"]
                            for i in batch]
                    while True:
                        with state.sessions() as session:
                            rows = list(session.execute(select(Job.status).where(Job.id.in_(
                                [uuid.UUID(j) for j in jobs]))).scalars())
                        if all(s in ("succeeded", "failed") for s in rows):
                            return rows
                        time.sleep(0.05)

                run(ids[:workers * 2])  # warm-up, not timed: the workers connect and build their runtime
                start = time.perf_counter()
                rows = run(ids)
                seconds = time.perf_counter() - start
                failed = sum(1 for s in rows if s != "succeeded")
                if failed:
                    raise SystemExit(f"{failed} of {syncs} syncs failed on {workers} worker(s)")
                dispatcher = broker_dispatcher(settings)
                assert dispatcher is not None
                dispatcher.purge()
                return seconds
        finally:
            for proc in procs:
                os.killpg(proc.pid, signal.SIGTERM)
            for proc in procs:
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)


def _bare(sandbox_app: Any, base: str, syncs: int, findings: int) -> float:
    """The same syncs' vendor requests, one after the other, with a plain client: seconds."""
    from pmap_sandbox.scanners import _common

    credentials = [f"bare-{i}-{uuid.uuid4().int % 10**12:012d}" for i in range(syncs)]
    for credential in credentials:
        _common.seed(sandbox_app, VENDOR, credential, count=findings)
    start = time.perf_counter()
    with httpx.Client(timeout=60, trust_env=False) as c:
        for credential in credentials:
            page = 0
            while True:
                r = c.get(f"{base}/deployments/{SLUG}/findings", params={"page": page, "page_size": 100},
                          headers={"Authorization": f"Bearer {credential}"})
                r.raise_for_status()
                if len(r.json().get("findings", [])) < 100:
                    break
                page += 1
    return time.perf_counter() - start


def main(syncs: int, findings: int, latency: float, broker: str, counts: list[int]) -> None:
    """Run every round and print the figures."""
    from pmap_sandbox.scanners import SANDBOX_VENDORS
    from pmap_sandbox.server import SandboxServer, build_app

    with SandboxServer(build_app()) as sandbox, tempfile.TemporaryDirectory(prefix="pmap-bench-workers-") as tmp:
        httpx.post(f"{sandbox.base_url}/_sandbox/latency", json={"seconds": latency}).raise_for_status()
        base = sandbox.base_url + SANDBOX_VENDORS[VENDOR]["base_path"]
        print(f"{syncs} Semgrep syncs of {findings} findings each; the vendor answers each request {latency:g} s late; "
              f"broker {broker.split('@')[-1]}; {os.cpu_count()} cores")
        bare = _bare(sandbox.app, base, syncs, findings)
        print(f"  bare: the vendor requests one after the other   {bare:6.2f} s   {syncs / bare:6.2f} syncs/s")
        one = None
        for n in counts:
            seconds = _round(sandbox.app, base, n, syncs, findings, broker, Path(tmp))
            one = one or seconds
            print(f"  {n} worker process{'es' if n > 1 else '  '}                             {seconds:6.2f} s   "
                  f"{syncs / seconds:6.2f} syncs/s   {one / seconds:4.2f}x one worker")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--syncs", type=int, default=40)
    parser.add_argument("--findings", type=int, default=30)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--broker", default=os.environ.get("PMAP_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1//"))
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    main(args.syncs, args.findings, args.latency, args.broker, [int(n) for n in args.workers.split(",")])
