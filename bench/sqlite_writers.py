"""Issue 10 item 5 benchmark: how long a SQLite import holds the write lock, and what another writer waits.

Generates a report (``bench/gen_sarif.py`` or ``bench/gen_nessus.py``) into a temp dir (deleted
after), imports it twice (first import, then every row updated) into a fresh SQLite file, and
while each import runs, another connection commits a one-row ``BEGIN IMMEDIATE`` write every 50 ms
(what a webhook delivery or a PATCH does). Prints per import: its total time, the wall and CPU time
of its publish step (the only time it holds the write lock, :mod:`pmap.findings.staging`) and the
other writer's commits, worst wait and failures (a failure is a wait past the busy timeout).

    python -m bench.sqlite_writers [--findings 100000] [--format sarif|nessus]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.findings import _options, _setup


def _other_writer(engine: Any, stop: threading.Event, waits: list[float], failures: list[str]) -> None:
    """Small write transactions until ``stop``: each one's wait for the lock (and commit) is recorded."""
    with engine.connect() as conn:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                conn.exec_driver_sql("UPDATE organizations SET name = name")
                conn.commit()
                waits.append(time.perf_counter() - start)
            except Exception as exc:  # the busy timeout passed: the measurement's point
                conn.rollback()
                failures.append(type(exc).__name__)
            stop.wait(0.05)


def main(findings: int, key: str) -> None:
    """Generate, import twice with another writer alongside, print the figures."""
    from pmap.findings import staging
    from pmap.findings.importer import run_import

    publish: list[tuple[float, float]] = []
    real = staging.StagedWriter.publish

    @contextmanager
    def timed(self: staging.StagedWriter) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        with real(self):
            yield
        publish.append((time.perf_counter() - wall, time.process_time() - cpu))

    staging.StagedWriter.publish = timed  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory(prefix="pmap-bench-sqlite-") as tmp:
        path = Path(tmp) / f"bench.{key}"
        if key == "nessus":
            from bench.gen_nessus import write_nessus
            write_nessus(path, findings=findings)
        else:
            from bench.gen_sarif import write_sarif
            write_sarif(path, results=findings)
        engine, target = _setup(f"sqlite:///{Path(tmp) / 'pmap.db'}", key, rules=False)
        print(f"{key} {path.stat().st_size / 1e6:.0f} MB, {findings:,} findings, SQLite")
        for label in ("import", "re-import"):
            stop = threading.Event()
            waits: list[float] = []
            failures: list[str] = []
            other = threading.Thread(target=_other_writer, args=(engine, stop, waits, failures))
            other.start()
            start = time.perf_counter()
            summary = run_import(engine, target, path, _options(path, key))
            total = time.perf_counter() - start
            stop.set()
            other.join()
            wall, cpu = publish[-1]
            print(f"{label:9} total {total:6.2f}s  publish (write lock held) {wall:5.2f}s wall {cpu:5.2f}s CPU  "
                  f"other writer: {len(waits)} commits, worst wait {max(waits, default=0):5.2f}s, "
                  f"{len(failures)} failed  ({summary.created:,} created, {summary.updated:,} updated)")
        engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--format", choices=("sarif", "nessus"), default="sarif")
    args = parser.parse_args()
    main(args.findings, args.format)
