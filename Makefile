# PMAP: two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(VENV)/bin/pip
STAMP  := $(VENV)/.installed
VENDOR := pmap/console/vendor
PMAP_TEST_DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export PMAP_TEST_DATABASE_URL

.PHONY: run test lint install dist postgres brokers browser softhsm bench probe clean

$(STAMP): pyproject.toml $(VENDOR)/package-lock.json
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; install Python 3.11"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e ".[test]"
	@bash scripts/ensure-console-vendor.sh $(VENDOR)
	@touch $(STAMP)

install: $(STAMP)

## make dist: a wheel in dist/ with the console's vendor files (installed by npm ci above), checked for them
dist: $(STAMP)
	rm -rf build  # setuptools would reuse an earlier build's files
	$(PIP) wheel --quiet --no-deps --wheel-dir dist .
	$(PY) scripts/check-wheel.py dist/pmap-*.whl

## make run: venv, install, migrate, serve the API on 127.0.0.1:8000 with the embedded SQLite default
run: $(STAMP)
	$(VENV)/bin/pmapctl db upgrade
	$(VENV)/bin/pmapctl serve --host 127.0.0.1 --port 8000

## make test: venv, install, the gate (make lint), make sure PostgreSQL, Redis, RabbitMQ, chromium and SoftHSM2 are there,
## run every test (the console's browser tests write their screenshots to build/screenshots/)
test: lint postgres brokers browser softhsm
	$(PY) -m pytest

## make lint: ruff (rules in pyproject.toml) and mypy (strict where secrets are handled); fails on any finding
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

postgres:
	@bash scripts/ensure-postgres.sh "$(PMAP_TEST_DATABASE_URL)"

## Redis and RabbitMQ for the job engine's tests (installed from Debian's packages when missing, started if stopped)
brokers:
	@bash scripts/ensure-brokers.sh

## Debian's chromium for the console's browser tests (installed when missing; Playwright drives it, never a
## browser of its own)
browser:
	@bash scripts/ensure-chromium.sh

## SoftHSM2 for the PKCS#11 key provider's tests and bench (Debian's softhsm2, installed when missing)
softhsm:
	@bash scripts/ensure-softhsm.sh

bench: $(STAMP) postgres brokers softhsm
	$(PY) -m bench

## make probe: schemathesis against a production-mode server on PostgreSQL; fails on any 5xx or leaked canary
## (PROBE_ARGS="--max-time 600" for a longer run)
probe: $(STAMP) postgres
	$(PIP) install --quiet -e ".[test,probe]"
	$(PY) -m bench.probe $(PROBE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache $(VENDOR)/node_modules build/screenshots dist
