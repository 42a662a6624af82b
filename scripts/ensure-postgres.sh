#!/usr/bin/env bash
# Make sure the PostgreSQL named by $1 (a SQLAlchemy URL) answers; start the local cluster when it is
# installed and stopped. Exits non-zero with a reason when PostgreSQL cannot be reached.
set -euo pipefail
url="${1:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
dsn="${url/postgresql+psycopg:/postgresql:}"

ready() { pg_isready -d "$dsn" -q 2>/dev/null || psql "$dsn" -Atqc 'select 1' >/dev/null 2>&1; }

if ready; then exit 0; fi
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    echo "starting PostgreSQL cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  done
  for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
fi
echo "PostgreSQL is not reachable at $dsn (set PMAP_TEST_DATABASE_URL or start PostgreSQL)" >&2
exit 1
