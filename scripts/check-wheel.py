"""Check a built PMAP wheel (``make dist``): it holds the console's vendor files, the migrations and the console's own
files, and nothing of the tests, benchmarks or a data directory. Exit 1 naming what is wrong."""

from __future__ import annotations

import sys
import zipfile

from pmap.console.assets import packaged_vendor_files

REQUIRED = [*packaged_vendor_files(), "pmap/migrations/env.py", "pmap/migrations/script.py.mako",
            "pmap/console/templates/page.html", "pmap/console/static/js/main.js"]
FORBIDDEN_PREFIXES = ("tests/", "bench/", ".pmap/", "scripts/")


def problems(wheel: str) -> list[str]:
    """What the wheel lacks or should not hold."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [f"missing {name}" for name in REQUIRED if name not in names]
    extra = sorted(f"holds {name}" for name in names if name.startswith(FORBIDDEN_PREFIXES))
    return missing + extra


if __name__ == "__main__":
    found = [p for wheel in sys.argv[1:] for p in problems(wheel)]
    for problem in found:
        print(f"{sys.argv[1]}: {problem}", file=sys.stderr)
    sys.exit(1 if found or len(sys.argv) < 2 else 0)
