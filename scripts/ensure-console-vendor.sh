#!/usr/bin/env bash
# Install the console's third-party browser code (Swagger UI for /docs) from the npm registry, exactly as
# pmap/console/vendor/package-lock.json pins it (`npm ci` checks every file's integrity hash); Node.js and npm
# come from Debian's packages when missing. Install scripts are not run (--ignore-scripts), so nothing a
# package ships executes at install time.
set -euo pipefail
vendor="${1:-pmap/console/vendor}"

if ! command -v npm >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm >/dev/null
  else
    echo "npm is missing: install Node.js and npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  fi
fi
cd "$vendor"
SCARF_ANALYTICS=false npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
