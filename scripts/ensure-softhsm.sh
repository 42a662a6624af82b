#!/usr/bin/env bash
# SoftHSM2 (Debian's softhsm2) for the PKCS#11 key provider's tests and bench (PMAP_TEST_PKCS11_MODULE, default
# /usr/lib/softhsm/libsofthsm2.so): installed from Debian's packages when missing. Tests make their own tokens in
# temporary directories (SOFTHSM2_CONF); nothing here touches the system's token directory.
set -euo pipefail
module="${PMAP_TEST_PKCS11_MODULE:-/usr/lib/softhsm/libsofthsm2.so}"
[ -r "$module" ] && command -v softhsm2-util >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "installing Debian's softhsm2 for the PKCS#11 tests"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q softhsm2 >/dev/null
else
  echo "SoftHSM2 is missing: install it (Debian: apt-get install softhsm2)" >&2
  exit 1
fi
