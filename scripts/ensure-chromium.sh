#!/usr/bin/env bash
# Debian's chromium for the console's browser tests (PMAP_TEST_CHROMIUM, default /usr/bin/chromium): installed
# from Debian's packages when missing. Playwright drives it; no browser is downloaded.
set -euo pipefail
chromium="${PMAP_TEST_CHROMIUM:-/usr/bin/chromium}"
[ -x "$chromium" ] && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's chromium for the browser tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
else
  echo "chromium is missing: install it (Debian: apt-get install chromium)" >&2
  exit 1
fi
