"""Canary secrets planted in every credential field must surface nowhere: responses, logs, dumps."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from pmap.connectors.base import secret_field_names
from pmap.connectors.catalog import connector_types
from pmap.core.seams import Purpose
from pmap.integrations.models import Integration
from tests.conftest import Api, canary, marker_free_hex


def _credential_sets(vendor: str, label: str) -> list[dict[str, str]]:
    """One credential map per credential kind the vendor accepts (one map when it has no kinds)."""
    model = connector_types()[vendor].credentials_model
    kinds: dict[str, tuple[str, ...]] = getattr(model, "credential_kinds", {})
    if not kinds:
        return [_credentials_for(vendor, label)]
    return [_credentials_for(vendor, label + kind, set(fields)) for kind, fields in kinds.items()]


def _credentials_for(vendor: str, label: str, fields: set[str] | None = None) -> dict[str, str]:
    """A canary in every secret field (of one credential kind), in a form the vendor's schema accepts."""
    model = connector_types()[vendor].credentials_model
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        if fields is not None and name not in fields:
            continue
        if name in secret_field_names(model):
            candidates = [canary(label + name), "ca11ab1e" + marker_free_hex(24)]
        elif info.is_required() or fields is not None:  # an identity of the kind (client_id, e-mail, app id)
            candidates = [f"user-{name}@acme.test", "acme", "1" * 12]
        else:
            continue
        for candidate in candidates:
            try:
                model.model_validate({**out, name: candidate})
            except Exception as exc:
                if any(e["loc"] == (name,) for e in exc.errors()):  # type: ignore[attr-defined]
                    continue
            out[name] = candidate
            break
    return out


def _exercise(api: Api) -> tuple[list[str], list[str]]:
    """Create an integration of every seeded vendor with canaries, then touch every read path."""
    h = api.token()
    planted: list[str] = []
    texts: list[str] = []
    cases = [(vendor, ct, creds) for vendor, ct in connector_types().items()
             if not (ct.file_only and not secret_field_names(ct.credentials_model))
             for creds in _credential_sets(vendor, vendor)]
    for vendor, ct, creds in cases:
        legacy = canary("legacy" + vendor)
        planted += [*[v for k, v in creds.items() if k in secret_field_names(ct.credentials_model)], legacy]
        connection = {"api_key": legacy, **_required_connection(ct)}
        name = f"{vendor}-{len(texts)}"  # a vendor with two credential kinds has two integrations
        body = {"name": name, "vendor": vendor, "connection": connection, "credentials": creds}
        r = api.client.post("/api/v1/integrations", json=body, headers=h)
        assert r.status_code == 201, r.text
        texts.append(r.text)
        iid = r.json()["id"]
        texts.append(api.client.get(f"/api/v1/integrations/{iid}", headers=h).text)
        # an invalid update that carries a canary: the error must not echo it
        bad = canary("bad")
        planted.append(bad)
        r = api.client.patch(f"/api/v1/integrations/{iid}", json={"credentials": {"not_a_field": bad}}, headers=h)
        assert r.status_code == 422
        texts.append(r.text)
        # a resolve for a named purpose: audited, values registered for redaction while in use
        row = api.state.sessions().get_one(Integration, uuid.UUID(iid))
        with api.state.resolver.resolve(row, purpose=Purpose.CONNECTION_TEST, actor=_actor(api, row)) as resolved:
            assert set(resolved.values) >= set(k for k in creds if k in secret_field_names(ct.credentials_model))
            import logging

            first = resolved.values[next(iter(resolved.values))]
            logging.getLogger("pmap.test").error("vendor said: bad key %s", first)
            try:
                raise RuntimeError(f"boom with {next(iter(resolved.values.values()))}")
            except RuntimeError:
                logging.getLogger("pmap.test").exception("traceback carrying a secret")
    texts.append(api.client.get("/api/v1/integrations", headers=h).text)
    texts.append(api.client.get("/api/v1/audit-events", headers=h).text)
    texts.append(api.client.get("/openapi.json").text)
    return planted, texts


def _required_connection(ct) -> dict[str, str]:
    """Plausible values for a vendor's required non-secret connection settings."""
    out: dict[str, str] = {}
    for name, info in ct.connection_model.model_fields.items():
        if name == "base_url":
            out[name] = ct.default_base_url or f"https://{ct.vendor}.acme.test"
        elif info.is_required():
            for candidate in ("acme", "acme/webapp", "1"):
                try:
                    ct.connection_model.model_validate({**out, "base_url": "https://x.test", name: candidate})
                except Exception as exc:
                    if any(e["loc"] == (name,) for e in exc.errors()):  # type: ignore[attr-defined]
                        continue
                out[name] = candidate
                break
    return out


def _actor(api: Api, row):
    from pmap.core.seams import Actor

    return Actor(kind="system", name="test", organization_id=row.organization_id)


def test_canaries_absent_from_responses_logs_and_database(api: Api, capfd: pytest.CaptureFixture[str],
                                                          db_url: str) -> None:
    planted, texts = _exercise(api)
    assert planted
    logs = capfd.readouterr()
    everything = "\n".join(texts) + logs.out + logs.err
    assert "vendor said: bad key [REDACTED]" in logs.err  # the log line was written, scrubbed
    for value in planted:
        assert value not in everything, "a canary leaked into a response or a log line"
    dump = _dump(db_url)
    assert b"encrypted_credentials" in dump or b"integrations" in dump
    for value in planted:
        assert value.encode() not in dump, "a canary is stored in plaintext"


def _dump(db_url: str) -> bytes:
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        path = Path(url.database)
        data = path.read_bytes()
        for extra in (Path(str(path) + "-wal"), Path(str(path) + "-shm")):
            if extra.exists():
                data += extra.read_bytes()
        return data
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        pytest.fail("pg_dump is needed for the PostgreSQL dump test (install postgresql-client)")
    options = url.query["options"]
    schema = (options if isinstance(options, str) else options[0]).split("search_path=")[1]
    dsn = f"postgresql://{url.username}@{url.host}:{url.port or 5432}/{url.database}"
    out = subprocess.run([pg_dump, "--no-owner", "-n", schema, dsn], capture_output=True, check=True,
                         env={**os.environ})
    assert b"CREATE TABLE" in out.stdout
    return out.stdout


def test_production_json_log_lines_are_scrubbed_too() -> None:
    import json
    import logging
    import sys

    from pmap.core import redaction
    from pmap.core.logs import JsonFormatter

    secret = canary("json")
    with redaction.secrets_in_use([secret]):
        try:
            raise RuntimeError(f"boom with {secret}")
        except RuntimeError:
            record = logging.LogRecord("pmap.test", logging.ERROR, __file__, 1, "vendor said: bad key %s", (secret,),
                                       sys.exc_info())
        line = JsonFormatter().format(record)
    doc = json.loads(line)
    assert doc["message"] == "vendor said: bad key [REDACTED]" and "RuntimeError" in doc["exception"]
    assert secret not in line


def test_json_log_lines_carry_no_terminal_colour_codes() -> None:
    import json
    import logging

    from pmap.core.logs import JsonFormatter

    record = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started server process [%d]", (7,), None)
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"  # as uvicorn sets it
    record.request_path = "/healthz"  # other extras stay
    doc = json.loads(JsonFormatter().format(record))
    assert "color_message" not in doc and doc["request_path"] == "/healthz" and "\x1b" not in json.dumps(doc)
