"""Issue 12 benchmark: a Tenable VM export sync of 100,000 findings into PostgreSQL, beside the file import
of the same findings.

The vendor sandbox (in this process) is seeded with 100,000 Tenable VM findings. Each measurement then runs
in a fresh subprocess against a fresh PostgreSQL schema, so its peak memory is its own:

- import (the baseline): the same findings as one Tenable VM CSV file (written here, untimed, from the very
  export chunks the sync reads, with the connector's own CSV rendering), imported with ``run_import``;
- the vendor's side, for reference: requesting, polling and downloading the whole export, nothing else (the
  sandbox renders each seeded record's JSON on the first export and keeps it, as a vendor serves stored data:
  the first export's time is printed too);
- sync: an app started as ``pmapctl serve`` starts it (embedded jobs), an integration on the sandbox, and
  ``POST /integrations/{id}/sync`` timed until its job's ``finished_at``: the export requested, polled, and
  every chunk streamed through the import pipeline, as a worker does it. The job is polled through the API
  every 0.25 s.

Prints time, findings/s and peak RSS (VmHWM) of each, and the sync's time as a multiple of the
import's. Targets (issue 12): the sync within 1.5x the import's time, under 300 MB.

    python -m bench.sync [--findings 100000] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

VENDOR = "tenable_vm"
POLL_SECONDS = 0.25
ACCESS, SECRET = "bench-access-0000000001", "bench-secret-0000000001"


def _rss_mb() -> float:
    from bench.common import peak_rss_mb

    return peak_rss_mb()


def _download(base_url: str) -> tuple[list[Any], float]:
    """The sandbox's whole export, every chunk's records, and the seconds it took to request, poll and download
    (the vendor's side of a sync, which no client can beat)."""
    headers = {"X-ApiKeys": f"accessKey={ACCESS}; secretKey={SECRET}"}
    start = time.perf_counter()
    with httpx.Client(base_url=base_url, headers=headers, timeout=120, trust_env=False) as c:
        export = c.post("/vulns/export", json={"num_assets": 500, "filters": {"state": ["OPEN", "REOPENED",
                                                                                        "FIXED"]}}).json()
        uid = export["export_uuid"]
        chunks: list[int] = []
        while not chunks:
            status = c.get(f"/vulns/export/{uid}/status").json()
            chunks = status.get("chunks_available") or [] if status["status"] == "FINISHED" else []
            time.sleep(0.05)
        records: list[Any] = []
        for n in chunks:
            records.extend(orjson.loads(c.get(f"/vulns/export/{uid}/chunks/{n}").content))
    return records, time.perf_counter() - start


def _write_csv(base_url: str, path: Path) -> tuple[int, float, float]:
    """The sandbox's export, every chunk, rendered as one Tenable VM CSV file the way the connector renders
    each chunk; returns the number of records, and the seconds the first export took (the sandbox renders each
    seeded record's JSON once, then keeps it, as a vendor keeps its data) and a second one (the vendor's side
    of each measured sync)."""
    from pmap.connectors.vendors import _tenable_export

    records, first = _download(base_url)
    path.write_bytes(_tenable_export.to_csv(records))
    count = len(records)
    del records
    _, again = _download(base_url)
    return count, first, again


def _import(csv: Path) -> dict[str, Any]:
    from bench.common import pg_schema
    from pmap.auth.service import get_or_create_org
    from pmap.core.db import make_engine, make_session_factory, transaction
    from pmap.findings.importer import ImportOptions, ImportTarget, run_import
    from pmap.integrations.models import Integration
    from pmap.migrations import upgrade

    with pg_schema() as url:
        upgrade(url)
        engine = make_engine(url)
        with transaction(make_session_factory(engine)) as session:
            org = get_or_create_org(session, "bench")
            row = Integration(organization_id=org.id, name="bench", vendor=VENDOR, category="vm", connection={},
                              credential_fields=[], webhook_state={}, severity_threshold="info")
            session.add(row)
            session.flush()
            target = ImportTarget(org.id, row.id, VENDOR, ("tenable_csv",), "info")
        start = time.perf_counter()
        summary = run_import(engine, target, csv, ImportOptions(format="tenable_csv", scope="sync", actor="bench"))
        elapsed = time.perf_counter() - start
        engine.dispose()
    return {"seconds": elapsed, "findings": summary.created}


def _sync(base_url: str, data_dir: Path) -> dict[str, Any]:
    from fastapi.testclient import TestClient

    from bench.common import pg_schema
    from pmap.app import create_app
    from pmap.core.crypto import generate_key
    from pmap.core.settings import Settings
    from pmap.migrations import upgrade

    with pg_schema() as url:
        upgrade(url)
        settings = Settings(env="development", database_url=url, data_dir=data_dir, platform_key=generate_key(),
                            bootstrap_admin_token="pmap_" + uuid.uuid4().hex * 2, scheduler_enabled=False)
        with TestClient(create_app(settings)) as client:
            assert settings.bootstrap_admin_token is not None
            h = {"Authorization": f"Bearer {settings.bootstrap_admin_token.get_secret_value()}"}
            r = client.post("/api/v1/integrations", headers=h, json={
                "name": "bench", "vendor": VENDOR, "connection": {"base_url": base_url},
                "credentials": {"access_key": ACCESS, "secret_key": SECRET}})
            r.raise_for_status()
            iid = r.json()["id"]
            start = time.time()
            job = client.post(f"/api/v1/integrations/{iid}/sync", headers=h, json={"full": True}).json()["job"]
            # the job's own finished_at ends the timing, so the bench can poll gently: each poll is a full API
            # request (auth, a database read) served by the very process that syncs, about 9 ms of its CPU, and
            # polling every 50 ms took a fifth of a core from the sync
            while job["status"] not in ("succeeded", "failed"):
                time.sleep(POLL_SECONDS)
                job = client.get(f"/api/v1/jobs/{job['id']}", headers=h).json()
            elapsed = datetime.fromisoformat(job["finished_at"]).timestamp() - start
        if job["status"] != "succeeded":
            raise SystemExit(f"the sync failed: {job.get('error')}")
    return {"seconds": elapsed, "findings": job["result"]["created"]}


def child(kind: str, arg: str) -> dict[str, Any]:
    """One measurement in this fresh process."""
    if kind == "import":
        result = _import(Path(arg))
    else:
        with tempfile.TemporaryDirectory(prefix="pmap-bench-sync-") as tmp:
            result = _sync(arg, Path(tmp))
    return {**result, "rss_mb": _rss_mb()}


def _measure(kind: str, arg: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.sync", "--child", kind, arg],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(findings: int, repeat: int) -> None:
    """Seed the sandbox, write the baseline file, measure each kind ``repeat`` times (interleaved)."""
    from pmap_sandbox.server import SandboxServer, build_app

    with SandboxServer(build_app()) as sandbox, tempfile.TemporaryDirectory(prefix="pmap-bench-sync-") as tmp:
        httpx.post(f"{sandbox.base_url}/_sandbox/seed/{VENDOR}", json={"count": findings, "fixed": []},
                   timeout=120).raise_for_status()
        base_url = sandbox.url(VENDOR)
        csv = Path(tmp) / "tenable_vm.csv"
        records, first, fetched = _write_csv(base_url, csv)
        print(f"{records:,} Tenable VM findings seeded; the baseline CSV is {csv.stat().st_size / 1e6:.0f} MB; "
              f"downloading the whole export alone (the vendor's side of a sync) took {fetched:.2f}s "
              f"({first:.2f}s the first time, when the sandbox renders the seeded records)", flush=True)
        rounds = [{"import": _measure("import", str(csv)), "sync": _measure("sync", base_url)} for _ in range(repeat)]
    best = {kind: dict(min((r[kind] for r in rounds), key=lambda m: m["seconds"])) for kind in ("import", "sync")}
    for kind in best:
        best[kind]["rss_mb"] = max(r[kind]["rss_mb"] for r in rounds)
    print(f"{'measurement':12} {'time':>8} {'findings/s':>11} {'peak RSS':>9}")
    for kind, r in best.items():
        print(f"{kind:12} {r['seconds']:7.2f}s {r['findings'] / r['seconds']:11,.0f} {r['rss_mb']:7.0f}MB")
    ratio = best["sync"]["seconds"] / best["import"]["seconds"]
    print(f"\nsync {ratio:.2f}x the file import's time (target <= 1.5x), peak {best['sync']['rss_mb']:.0f} MB "
          f"(target < 300), {best['sync']['findings']:,} findings created by each")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of each measurement; the fastest is shown")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child)))
    else:
        main(args.findings, max(1, args.repeat))
