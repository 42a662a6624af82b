"""Connection tests: of unsaved settings, and of a saved integration with optional unsaved edits.

A stored secret is reused only when the edited target (scheme, host, port, base path) and its TLS
trust (verification on, the same pinned CA bundle or none) are the saved ones; pointing a test at
another host, or checking who answers there differently, needs the secrets again, so a test can
never be used to send a saved credential somewhere else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy.orm import Session

from pmap.auth.principal import Principal
from pmap.connectors.base import ConnectionTestResult, secret_field_names
from pmap.connectors.runner import operation_context, overlay_credentials, run_connection_test
from pmap.core.db import utcnow
from pmap.core.errors import FieldProblem, IntegrationDisabled, ValidationFailed
from pmap.core.seams import CredentialSource, Purpose
from pmap.core.settings import Settings
from pmap.integrations.models import Integration
from pmap.integrations.service import (
    LEGACY_API_KEY,
    _plain,
    target_changed,
    validate_connection,
    validate_credentials,
    vendor_type,
)


class UnsavedTest(BaseModel):
    """Settings to test without saving anything."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    vendor: str = Field(min_length=1, max_length=64)
    connection: dict[str, Any] = Field(default_factory=dict)
    credentials: dict[str, SecretStr | None] = Field(default_factory=dict, json_schema_extra={"writeOnly": True})


class SavedTestOverlay(BaseModel):
    """Unsaved edits laid over a saved integration for one test (nothing is saved)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    connection: dict[str, Any] | None = None
    credentials: dict[str, SecretStr | None] | None = Field(default=None, json_schema_extra={"writeOnly": True})


def run_unsaved_test(settings: Settings, body: UnsavedTest) -> ConnectionTestResult:
    """Test a vendor type with settings and credentials that are not stored. Writes nothing."""
    ct = vendor_type(body.vendor)
    connection, legacy = validate_connection(ct, body.connection)
    credentials = validate_credentials(ct, _plain(body.credentials))
    if legacy:
        credentials.setdefault(LEGACY_API_KEY, legacy)
    ctx = operation_context(settings, ct, connection, credentials, purpose="connection_test")
    return run_connection_test(ctx, ct)


def run_saved_test(
    session: Session, settings: Settings, resolver: CredentialSource, principal: Principal,
    row: Integration, overlay: SavedTestOverlay,
) -> ConnectionTestResult:
    """Test a saved integration, optionally with unsaved edits. A test of the saved settings as they are is
    recorded in ``last_test`` (ok or not) and, when it succeeds, stamps ``last_tested_at``. A disabled
    integration runs nothing (409)."""
    if not row.enabled:
        raise IntegrationDisabled("the integration is disabled (enabled: false): enable it to test it, or test "
                                  "its settings unsaved with POST /api/v1/integrations/test")
    ct = vendor_type(row.vendor)
    connection = dict(row.connection)
    for key, value in (overlay.connection or {}).items():
        if value is None:
            connection.pop(key, None)
        else:
            connection[key] = value
    connection, legacy = validate_connection(ct, connection)
    incoming = {k: v for k, v in _plain(overlay.credentials or {}).items() if v is not None}
    if target_changed(row.connection, connection):
        missing = [n for n in secret_field_names(ct.credentials_model)
                   if n in row.credential_fields and n not in incoming]
        if missing:
            raise ValidationFailed(
                "the test points at another target: supply the secrets again",
                fields=[FieldProblem(f"credentials.{n}",
                                     "must be supplied when testing another host or another TLS trust")
                        for n in missing],
            )
        with resolver.resolve(row, purpose=Purpose.CONNECTION_TEST, actor=principal.actor) as stored:
            # only non-secret identity fields (a user name) carry over to another target
            secret_names = set(secret_field_names(ct.credentials_model)) | {LEGACY_API_KEY}
            merged = {k: v for k, v in stored.values.items() if k not in secret_names}
        merged.update(incoming)
        session.commit()  # release the pooled connection while the vendor is called
        return _run(settings, ct, connection, merged, legacy)
    session.commit()  # release the pooled connection while the vendor is called
    with resolver.resolve(row, purpose=Purpose.CONNECTION_TEST, actor=principal.actor) as stored:
        merged = overlay_credentials(ct.credentials_model, stored.values, incoming)
        result = _run(settings, ct, connection, merged, legacy)
    if not overlay.connection and not incoming:  # a test of the saved settings as they are: theirs to keep
        at = utcnow()
        row.last_test = last_test_record(result, at)
        if result.ok:
            row.last_tested_at = at
        session.commit()
    return result


_TEXT_MAX = 200  # product and version are the vendor's words: shown, so kept, but short


def _short(value: Any) -> str | None:
    return value[:_TEXT_MAX] if isinstance(value, str) else None


def last_test_record(result: ConnectionTestResult, at: datetime) -> dict[str, Any]:
    """What an integration keeps of a test of its saved settings (``last_test``): no message, no warning (they
    may quote the vendor's answer), only the outcome and what the vendor said it is."""
    expires = (result.license or {}).get("expires_at")
    return {"ok": result.ok, "at": at.isoformat(),
            "latency_ms": round(result.latency_ms) if result.latency_ms is not None else None,
            "step": None if result.ok else result.failed_step, "product": _short(result.product),
            "version": _short(result.version), "license_expires_at": _short(expires)}


def _run(settings: Settings, ct: Any, connection: dict[str, Any], credentials: dict[str, str],
         legacy: str | None) -> ConnectionTestResult:
    legacy_value = credentials.pop(LEGACY_API_KEY, None) or legacy
    checked = validate_credentials(ct, credentials)
    if legacy_value:
        checked[LEGACY_API_KEY] = legacy_value
    ctx = operation_context(settings, ct, connection, checked, purpose="connection_test")
    return run_connection_test(ctx, ct)
