"""The embedded default: `pmapctl serve` alone, on its SQLite file, with no broker, runs syncs itself, runs a
scheduled sync of its own accord, and loses no job to a restart (one killed mid-sync, one waiting behind it)."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pmap.core.crypto import generate_key
from pmap_sandbox.server import SandboxServer

from .conftest import unique

#: long enough that a sync is still running when its server is killed (one job thread on SQLite)
LONG = 30_000


class Served:
    """`pmapctl serve` on a free port with its own data directory; restartable."""

    def __init__(self, tmp_path: Path) -> None:
        self.token = secrets.token_urlsafe(32)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}
        self.env.update({"PMAP_DATA_DIR": str(tmp_path / "data"), "PMAP_PLATFORM_KEY": generate_key(),
                         "PMAP_BOOTSTRAP_ADMIN_TOKEN": self.token, "PMAP_SCHEDULER_INTERVAL": "1",
                         "PMAP_ENV": "development"})
        self.log = tmp_path / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "pmap.cli", "serve", "--port", str(port)],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("pmapctl serve did not start:\n" + self.log.read_text(errors="replace")[-3000:])

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return httpx.request(method, f"{self.base}/api/v1{path}", timeout=30,
                             headers={"Authorization": f"Bearer {self.token}"}, **kw)

    def job(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.call("GET", f"/jobs/{job_id}").json()
        return body

    def wait(self, job_id: str, seconds: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in ("succeeded", "failed"):
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} did not end: {self.job(job_id)}\n"
                             + self.log.read_text(errors="replace")[-3000:])

    def integration(self, sandbox: SandboxServer, **extra: Any) -> str:
        body = {"name": f"tvm-{uuid.uuid4().hex[:8]}", "vendor": "tenable_vm",
                "connection": {"base_url": sandbox.url("tenable_vm")},
                "credentials": {"access_key": unique(), "secret_key": unique("key")}, **extra}
        resp = self.call("POST", "/integrations", json=body)
        assert resp.status_code == 201, resp.text
        return str(resp.json()["id"])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = Served(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_serve_alone_syncs_on_request_on_schedule_and_across_a_restart(served: Served, sandbox: SandboxServer,
                                                                       seed: Any) -> None:
    seed("tenable_vm", 20, fixed=[4])
    served.start()
    # on request
    now = served.integration(sandbox)
    resp = served.call("POST", f"/integrations/{now}/sync")
    assert resp.status_code == 202, resp.text
    job = served.wait(resp.json()["job"]["id"])
    assert job["status"] == "succeeded" and job["result"]["created"] == 20 and job["attempts"] == 1

    # on schedule: every minute, nobody asking
    scheduled = served.integration(sandbox, sync_schedule="* * * * *")
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        detail = served.call("GET", f"/integrations/{scheduled}").json()
        if (detail.get("last_sync") or {}).get("status") == "ok":
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no scheduled sync ran: {detail}")
    jobs = [j for j in served.call("GET", "/jobs").json()["items"] if j["integration_id"] == scheduled]
    assert len(jobs) == 1 and jobs[0]["status"] == "succeeded" and jobs[0]["result"]["created"] == 20
    assert jobs[0]["attempts"] == 1
    off = served.call("PATCH", f"/integrations/{scheduled}", json={"sync_schedule": None})
    assert off.status_code == 200, off.text

    # across a restart: one sync killed mid-import, one waiting behind it (SQLite: one job thread)
    seed("tenable_vm", LONG)
    first, second = served.integration(sandbox), served.integration(sandbox)
    running = served.call("POST", f"/integrations/{first}/sync").json()["job"]["id"]
    waiting = served.call("POST", f"/integrations/{second}/sync").json()["job"]["id"]
    deadline = time.monotonic() + 120
    while served.job(running)["status"] != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.job(running)["status"] == "running" and served.job(waiting)["status"] == "queued"
    served.kill()  # SIGKILL: no shutdown, nothing handed back
    served.start()
    done = [served.wait(running, 300), served.wait(waiting, 300)]
    assert [(d["status"], d["attempts"]) for d in done] == [("succeeded", 2), ("succeeded", 1)], done
    assert all(d["result"]["created"] == LONG for d in done), "resumed from the start; nothing twice"
