"""Issue 3 benchmark: what PMAP adds to a connection test, and 50 tests at once.

Runs the vendor sandbox and PMAP's API on loopback (real HTTP both ways) and prints:
- the median and p95 of ``POST /api/v1/integrations/test`` for Nessus beside a bare httpx call to the
  same sandbox endpoint the connector uses (``GET /server/properties`` with ``X-ApiKeys``), and the
  difference: the overhead PMAP adds (validation, egress check and DNS pinning, its HTTP layer, the
  API round trip);
- 50 connection tests at once against a sandbox that answers too slowly (PMAP's budget set to 2 s),
  beside one such test alone: with workers that do not block each other, 50 take about as long as 1.

    python -m bench.connection_tests
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.common import pct, served, summary
from pmap.app import create_app
from pmap.auth.principal import Role
from pmap.auth.service import get_or_create_org, issue_token
from pmap.core.crypto import generate_key
from pmap.core.db import transaction
from pmap.core.settings import Settings
from pmap.migrations import upgrade
from pmap_sandbox.server import SandboxServer

N = 300
CONCURRENT = 50


def _token(app) -> str:
    with transaction(app.state.pmap.sessions) as s:
        return issue_token(s, get_or_create_org(s, "bench"), Role.OPERATOR, "bench").token


def main() -> None:
    print("PMAP issue 3 benchmark: connection-test overhead and concurrency (Nessus, vendor sandbox)")
    with tempfile.TemporaryDirectory() as tmp, SandboxServer() as sandbox:
        base = f"{sandbox.base_url}/nessus"
        creds = {"access_key": "1" * 64, "secret_key": "2" * 64}
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        # the outbound bound (pmap.core.concurrency) raised to the 50 measured at once, all from one organization
        settings = Settings(database_url=url, data_dir=Path(tmp), platform_key=generate_key(),
                            connection_test_timeout=2.0, outbound_concurrency=CONCURRENT,
                            outbound_concurrency_per_org=CONCURRENT)
        app = create_app(settings)
        with served(app) as api, httpx.Client(base_url=api, timeout=30) as client, httpx.Client(timeout=30) as bare:
            headers = {"Authorization": f"Bearer {_token(app)}"}
            body = {"vendor": "nessus", "connection": {"base_url": base}, "credentials": creds}
            keys = {"X-ApiKeys": f"accessKey={creds['access_key']}; secretKey={creds['secret_key']};"}
            for _ in range(20):  # warm both paths
                bare.get(f"{base}/server/properties", headers=keys)
                client.post("/api/v1/integrations/test", json=body, headers=headers)
            bare_ms, pmap_ms = [], []
            for _ in range(N):
                t0 = time.perf_counter()
                r = bare.get(f"{base}/server/properties", headers=keys)
                bare_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200
                t0 = time.perf_counter()
                r = client.post("/api/v1/integrations/test", json=body, headers=headers)
                pmap_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and r.json()["ok"], r.text
            print(f"  bare httpx GET /server/properties     : {summary(bare_ms)}")
            print(f"  PMAP POST /api/v1/integrations/test   : {summary(pmap_ms)}")
            added = statistics.median(pmap_ms) - statistics.median(bare_ms)
            print(f"  added by PMAP (median)                : {added:7.2f} ms")

            slow = {**body, "credentials": {"access_key": "slow" + "1" * 60, "secret_key": "2" * 64}}

            def one(_: int) -> tuple[float, dict]:
                t0 = time.perf_counter()
                r = httpx.post(f"{api}/api/v1/integrations/test", json=slow, headers=headers, timeout=60)
                return (time.perf_counter() - t0) * 1000, r.json()

            single, res = one(0)
            assert res["failed_step"] == "timeout", res
            t0 = time.perf_counter()
            with ThreadPoolExecutor(CONCURRENT) as pool:
                results = list(pool.map(one, range(CONCURRENT)))
            wall = (time.perf_counter() - t0) * 1000
            assert all(r["failed_step"] == "timeout" for _, r in results)
            slowest = max(ms for ms, _ in results)
            print(f"  one test against a too-slow vendor    : {single:7.0f} ms (budget 2 s, fails at step 'timeout')")
            print(f"  {CONCURRENT} such tests at once (wall clock)   : {wall:7.0f} ms  slowest {slowest:.0f} ms, "
                  f"p95 {pct([ms for ms, _ in results], 95):.0f} ms = {wall / single:.2f}x one test")
            t0 = time.perf_counter()
            assert httpx.get(f"{api}/healthz").status_code == 200
            print(f"  /healthz answered during the run in   : {(time.perf_counter() - t0) * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
