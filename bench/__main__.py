"""``python -m bench`` (``make bench``): every benchmark, one after the other, each in its own process."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "bench.integrations",      # issue 2: listing 10,000 integrations, one credential resolve
    "bench.keys",              # envelope encryption: resolve, seal and listing with the keyring KEK and an HSM KEK
    "bench.connection_tests",  # issue 3: connection-test overhead, 50 tests at once
    "bench.webhooks",          # issue 4: verified, stored deliveries per second
    "bench.rules_engine_bench",  # issue 5: rule evaluation cost per finding
    "bench.findings",          # issue 5: importing 100,000 findings (.nessus ~350 MB, SARIF)
    "bench.sqlite_writers",    # issue 10: how long a SQLite import holds the write lock, what other writers wait
    "bench.sync",              # issue 12: a Tenable VM export sync of 100,000 findings beside their file import
    "bench.workers",           # issue 12: many small syncs on 1, 2 and 4 worker processes (RabbitMQ)
)


def main() -> int:
    """Run each benchmark module; the exit code is the first failure's, else 0."""
    failed = 0
    for module in BENCHMARKS:
        print(f"\n=== {module} ===", flush=True)
        code = subprocess.call([sys.executable, "-m", module])
        failed = failed or code
    return failed


if __name__ == "__main__":
    sys.exit(main())
