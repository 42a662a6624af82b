"""The fault suite's machinery: a PostgreSQL cluster of its own, PMAP as real processes on it, the vendor sandbox.

What the suite proves (tests/faults/test_faults.py): PMAP killed with SIGKILL during an import's commit, during
webhook deliveries' intake and during a sync's write, and PostgreSQL restarted under a running import and a running
sync, leave every job in a clear state (succeeded after a retry, or failed with a reason; never running past its
lease), no finding half-written or twice (findings per integration + scope + fingerprint are unique and their
number is the report's or the vendor's distinct findings), every webhook delivery answered 2xx stored exactly
once, /readyz 200 again, every envelope opens (`pmapctl keys verify`, and a connection test of every integration
through the API against the sandbox), and `pmapctl audit verify` passes.

A key rotation killed with SIGKILL in the middle of a batch (tests/faults/test_key_rotation.py, on a database of
its own with its own ``pmapctl serve``): 300 integrations (some with webhook secrets) sealed under a keyring key,
every process restarted holding the keyring and a SoftHSM2 token's new key (the README's order), ``pmapctl keys
rotate --batch 20`` killed while its third batch waits on a row lock the test holds. The run is left unfinished
after its last committed batch (``key_rotations.done`` 40), the committed batches' envelopes are under the new key
and the killed batch's all under the old one, every envelope opens (`pmapctl keys verify`); the rerun continues
after 40 integrations, re-wraps exactly what was left and finishes; the server, restarted with the token alone,
resolves every integration's secrets and `pmapctl keys verify` and `pmapctl audit verify` pass. Meanwhile a client
resolves secrets through the server throughout (a connection test against the sandbox, a webhook secret revealed
and compared): every answer a success.

The cluster is made with ``initdb``/``pg_ctl`` in a temporary directory on a free port (its unix socket in that
directory too), so stopping or restarting it disturbs no other test; with ``pytest -n`` every xdist worker that
runs a fault test makes its own. As root, the PostgreSQL binaries run as the ``postgres`` OS user.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.common import free_port
from pmap.core.crypto import generate_key
from pmap_sandbox.server import SandboxServer, build_app

ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
#: a job's lease in the PMAP processes of the suite: short, so a dead attempt is seen dead quickly
LEASE_SECONDS = 3.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: kills PMAP and restarts a PostgreSQL cluster of the suite's own")


def wait_for(check: Callable[[], Any], seconds: float, what: str, *, every: float = 0.1,
             detail: Callable[[], str] = lambda: "") -> Any:
    """Poll ``check`` until it returns something truthy (its value) or ``seconds`` pass (an AssertionError)."""
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds} s\n{detail()}")
        time.sleep(every)


def _pg_bindir() -> Path:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    return Path(out)


class PgCluster:
    """A PostgreSQL cluster in a temporary directory, trust auth on 127.0.0.1 only."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.data = base / "data"
        self.sockets = base / "sockets"
        self.log = base / "postgres.log"
        self.port = free_port()
        self.bindir = _pg_bindir()
        self.as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=self.base)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"{self.log_text()}")
        return done

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def init(self) -> None:
        self.sockets.mkdir()
        if self.as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.sockets, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        self.start()

    def start(self) -> None:
        # fsync off: a test cluster; the faults here are process deaths, not power losses
        options = f"-p {self.port} -k {self.sockets} -c listen_addresses={LOOPBACK} -c fsync=off -c max_connections=200"
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.log), "-o", options)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", mode)

    def restart(self) -> None:
        """A crash and a restart: every connection cut at once, recovery from the WAL."""
        self.stop("immediate")
        self.start()

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-D", str(self.data), "-m", "immediate", check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    base = Path(tempfile.mkdtemp(prefix="pmap-faults-pg-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres user walks into it; it holds a throwaway cluster
    cluster = PgCluster(base)
    try:
        cluster.init()
        env = {**_clean_env(), "PMAP_DATABASE_URL": cluster.url}
        done = subprocess.run([sys.executable, "-m", "pmap.cli", "db", "upgrade"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr
        yield cluster
    finally:
        cluster.destroy()


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PMAP_")}


@dataclass
class Serve:
    """``python -m pmap.cli serve`` on the suite's cluster: started, killed with SIGKILL, started again, always on
    the same port, database, platform key and admin token."""

    tmp: Path
    database_url: str
    port: int = field(default_factory=free_port)
    platform_key: str = field(default_factory=generate_key)
    admin_token: str = field(default_factory=lambda: "pmap_" + secrets.token_urlsafe(32))
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def log_path(self, n: int) -> Path:
        return self.tmp / f"serve-{n}.log"

    def log_text(self) -> str:
        return "\n".join(f"--- serve-{n}.log\n" + self.log_path(n).read_text(errors="replace")[-4000:]
                         for n in range(1, self.starts + 1) if self.log_path(n).exists())

    def env(self) -> dict[str, str]:
        """The environment of this PMAP: its database, key, token and settings."""
        env = _clean_env()
        env.update({"PMAP_ENV": "development", "PMAP_DATABASE_URL": self.database_url,
                    "PMAP_DATA_DIR": str(self.tmp / "data"), "PMAP_PLATFORM_KEY": self.platform_key,
                    "PMAP_BOOTSTRAP_ADMIN_TOKEN": self.admin_token, "PMAP_PUBLIC_BASE_URL": self.base_url,
                    "PMAP_IMPORT_BACKGROUND_BYTES": "0",  # every upload imports as a background job
                    "PMAP_JOB_LEASE_SECONDS": str(LEASE_SECONDS), "PMAP_LOG_LEVEL": "INFO"})
        return env

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``pmapctl <args>`` against this PMAP's database, with its key."""
        return subprocess.run([sys.executable, "-m", "pmap.cli", *args], cwd=ROOT, env=self.env(),
                              capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        env = self.env()
        with self.log_path(self.starts).open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pmap.cli", "serve", "--host", LOOPBACK, "--port", str(self.port)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"pmapctl serve exited {proc.returncode}\n{self.log_text()}")
            return self.readyz() == 200

        wait_for(ready, 90, "pmapctl serve ready", every=0.2, detail=self.log_text)

    def readyz(self) -> int | None:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5, trust_env=False).status_code
        except httpx.HTTPError:
            return None

    def kill(self) -> None:
        """SIGKILL the server (its whole process group), as a lost machine would; reaped at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        kw.setdefault("timeout", 60)
        return httpx.request(method, f"{self.base_url}/api/v1{path}", headers=self.headers, trust_env=False, **kw)

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.api("GET", f"/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxServer]:
    """Every simulated vendor on plain loopback http, for this suite alone (it seeds vendors' data)."""
    with SandboxServer(build_app()) as server:
        yield server


@pytest.fixture(scope="session")
def serve(pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    server = Serve(tmp_path_factory.mktemp("serve"), pg_cluster.url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def running(serve: Serve, pg_cluster: PgCluster) -> Iterator[Serve]:
    """The server, up (a test that killed it and failed before restarting it leaves it down) and PostgreSQL up."""
    if not (pg_cluster.data / "postmaster.pid").exists():
        pg_cluster.start()
    if serve.proc is None or serve.proc.poll() is not None:
        serve.start()
    yield serve
