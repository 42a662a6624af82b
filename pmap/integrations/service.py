"""Creating, listing, reading, updating and deleting integrations. Listing decrypts nothing."""

from __future__ import annotations

import re
import uuid
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from pmap.audit.service import SessionAudit
from pmap.auth.principal import Principal
from pmap.connectors.base import ConnectorType, secret_field_names
from pmap.connectors.catalog import connector_types
from pmap.core.crypto import Keyring
from pmap.core.db import new_id, utcnow
from pmap.core.errors import Conflict, FieldProblem, ValidationFailed
from pmap.core.http_errors import validation_problems
from pmap.core.outbound import target_of
from pmap.core.pagination import newest_first, split_page
from pmap.core.text import CONTROL_CHARS
from pmap.core.urlpath import control_character_in
from pmap.credentials.service import CredentialResolver, Purpose, seal_credentials
from pmap.integrations.models import Integration
from pmap.integrations.schemas import IntegrationCreate, IntegrationOut, IntegrationPage, IntegrationUpdate

LEGACY_API_KEY = "connection.api_key"
_PLACEHOLDER = re.compile(r"^(?:[*•xX]{3,}|\[?redacted\]?|<redacted>|\*+unchanged\*+|unchanged)$", re.IGNORECASE)


def vendor_type(vendor: str) -> ConnectorType:
    """The catalog entry for ``vendor``, or a 422 naming the field."""
    ct = connector_types().get(vendor)
    if ct is None:
        raise ValidationFailed("unknown vendor type", fields=[FieldProblem("vendor", f"unknown vendor type {vendor!r}; see GET /api/v1/connector-types")])
    return ct


#: shorter values could not be masked in logs and messages without masking ordinary words
SECRET_MIN_CHARS = 4
_CONTROL = CONTROL_CHARS
#: a DNS name (labels of 1-63 letters, digits, hyphens; 253 at most) or an IP literal as target_of gives it
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?$"
                       r"|^[0-9a-f:.]+$", re.IGNORECASE)


def secret_problem(text: str) -> str | None:
    """Why a submitted secret value cannot be kept, or None. Never includes the value."""
    if _PLACEHOLDER.match(text.strip()):
        return "looks like a masked placeholder; omit the field to keep the stored value"
    if _CONTROL.search(text):
        # a line break or NUL would reach a vendor's header or a log escaped, out of the masking's sight
        return "contains control characters (line breaks, tabs, NUL); a credential is one line of text"
    if len(text) < SECRET_MIN_CHARS:
        return f"is too short for a credential (at least {SECRET_MIN_CHARS} characters)"
    return None


def _plain(values: dict[str, SecretStr | None]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    problems = []
    for name, value in values.items():
        # surrounding whitespace (a pasted token's trailing newline) is never part of a credential
        text = value.get_secret_value().strip() if value is not None else None
        reason = secret_problem(text) if text is not None else None
        if reason is not None:
            problems.append(FieldProblem(f"credentials.{name}", reason))
        out[name] = text
    if problems:
        raise ValidationFailed("the request is invalid", fields=problems)
    return out


def legacy_api_key(value: Any) -> str | None:
    """A legacy ``connection.api_key`` checked like any credential value (None: not given)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.api_key", "must be a string")])
    value = value.strip()
    if (reason := secret_problem(value)) is not None:
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.api_key", reason)])
    return value


def validate_connection(ct: ConnectorType, raw: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Validated non-secret settings (defaults filled) and the legacy ``api_key`` split off."""
    raw = dict(raw)
    legacy = legacy_api_key(raw.pop("api_key", None))
    if ct.default_base_url and not raw.get("base_url") and "base_url" in ct.connection_model.model_fields:
        raw["base_url"] = ct.default_base_url
    model = _validate(ct.connection_model, raw, "connection")
    data = model.model_dump(mode="json", exclude_none=True)
    if "base_url" in data:
        _check_base_url(data["base_url"])
        data["base_url"] = data["base_url"].rstrip("/")
    return data, (legacy or None)


def _embeds_credentials(url: str) -> bool:
    """Whether ``url`` starts with ``user@`` or ``user:password@`` (a password may hold "/" or "@")."""
    rest = url.split("://", 1)[-1]
    before_at, at, _ = rest.partition("@")
    if not at or before_at.startswith("["):  # none, or an IPv6 host with "@" in its path
        return False
    if "/" not in before_at:
        return True
    # "host:8443/path/@x" is a port and a path; "user:pa/ss@host" is a password
    _user, colon, after = before_at.partition(":")
    return bool(colon) and not after.split("/", 1)[0].isdigit()


def _check_base_url(url: str) -> None:
    # user:password@ first: such a URL may not even parse (a password holding "@" or "/"), and the
    # answer should say why it is refused (never echoing it)
    if _embeds_credentials(url):
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "must not embed credentials; use the credentials fields")])
    if control_character_in(url):
        # "%0d%0a" parses as a URL, then breaks (or splits) every request built from it
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "must not hold control characters (CR, LF, NUL, TAB, DEL, ...), raw or percent-encoded")])
    try:
        scheme, host, _port, _path = target_of(url)
    except Exception:
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "is not a valid http(s) URL")]) from None
    if scheme not in ("http", "https") or not host:
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "must be an http or https URL with a host")])
    if "?" in url or "#" in url:
        # a token in a query string would be stored and shown as a plain setting
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "must not carry a query string or fragment; credentials belong in the credentials fields")])
    if any(c.isspace() for c in url) or not _HOSTNAME.match(host):
        raise ValidationFailed("the request is invalid", fields=[FieldProblem("connection.base_url", "does not name a valid host")])


def validate_credentials(ct: ConnectorType, values: dict[str, str | None]) -> dict[str, str]:
    """The complete credential map, checked against the vendor's schema (values never echoed)."""
    present = {k: v for k, v in values.items() if v is not None}
    _validate(ct.credentials_model, present, "credentials")
    return {k: str(v) for k, v in present.items()}


def _validate(model: type[BaseModel], data: dict[str, Any], prefix: str) -> BaseModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [FieldProblem(f"{prefix}.{p.field}" if p.field != "body" else prefix, p.reason)
                    for p in validation_problems(exc.errors(include_input=False))]
        raise ValidationFailed("the request is invalid", fields=problems) from None


def _secret_names(values: dict[str, str], legacy: str | None) -> list[str]:
    names = sorted(values)
    if legacy:
        names.append(LEGACY_API_KEY)
    return names


def _sealed_map(values: dict[str, str], legacy: str | None) -> dict[str, str]:
    data = dict(values)
    if legacy:
        data[LEGACY_API_KEY] = legacy
    return data


def warnings_for(row: Integration) -> list[str]:
    """Standing warnings about an integration's configuration."""
    out = []
    if row.allow_unsigned_webhooks:
        out.append("unsigned webhook deliveries are accepted for this integration")
    if row.connection.get("verify_tls") is False:
        out.append("TLS certificate verification is off")
    if str(row.connection.get("base_url", "")).startswith("http://"):
        out.append("plain http: credentials travel unencrypted")
    return out


def to_out(row: Integration) -> IntegrationOut:
    """Response body of one integration (metadata only)."""
    return IntegrationOut(
        id=row.id, name=row.name, vendor=row.vendor, category=row.category, connection=dict(row.connection),
        credentials_set=list(row.credential_fields), enabled=row.enabled,
        allow_unsigned_webhooks=row.allow_unsigned_webhooks, severity_threshold=row.severity_threshold,
        webhook_secret_configured=bool((row.webhook_state or {}).get("configured")), warnings=warnings_for(row),
        last_tested_at=row.last_tested_at, last_synced_at=row.last_synced_at,
        created_at=row.created_at, updated_at=row.updated_at,
    )


def create(session: Session, keyring: Keyring, principal: Principal, body: IntegrationCreate) -> Integration:
    """Validate, encrypt and store a new integration."""
    ct = vendor_type(body.vendor)
    connection, legacy = validate_connection(ct, body.connection)
    credentials = validate_credentials(ct, _plain(body.credentials))
    row_id = new_id()
    row = Integration(
        id=row_id, organization_id=principal.organization_id, name=body.name, vendor=ct.vendor,
        category=ct.category.value, connection=connection,
        encrypted_credentials=seal_credentials(keyring, row_id, _sealed_map(credentials, legacy)),
        credential_fields=_secret_names(credentials, legacy), enabled=body.enabled,
        allow_unsigned_webhooks=body.allow_unsigned_webhooks, severity_threshold=body.severity_threshold,
    )
    _ensure_unique_name(session, principal, body.name)
    session.add(row)
    _audit(session, principal, "integration.create", row,
           {"vendor": row.vendor, "credentials_set": list(row.credential_fields)})
    _commit(session)
    return row


def _audit(session: Session, principal: Principal, action: str, row: Integration, detail: dict[str, Any]) -> None:
    """Record a change to an integration with the caller's work: field names only, never a value."""
    SessionAudit(session).record(actor=principal.actor, action=action, integration_id=row.id, purpose=None,
                                 outcome="success", detail=detail)


def update(
    session: Session, keyring: Keyring, resolver: CredentialResolver, principal: Principal,
    row: Integration, body: IntegrationUpdate,
) -> Integration:
    """Apply a partial update; secrets are merged under a ``credential_update`` decrypt and re-sealed."""
    ct = vendor_type(row.vendor)
    fields_set = body.model_fields_set
    before = {"name": row.name, "enabled": row.enabled, "allow_unsigned_webhooks": row.allow_unsigned_webhooks,
              "severity_threshold": row.severity_threshold}
    old_connection = dict(row.connection)
    changed_secrets: list[str] = []
    if body.name is not None and body.name != row.name:
        _ensure_unique_name(session, principal, body.name, exclude=row.id)
        row.name = body.name
    connection = dict(row.connection)
    new_legacy: str | None | bool = False  # False: untouched
    if body.connection is not None:
        merged = {k: v for k, v in connection.items()}
        for key, value in body.connection.items():
            if key == "api_key":
                new_legacy = legacy_api_key(value)  # None clears it
                continue
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        connection, _ = validate_connection(ct, merged)
    moved = target_changed(row.connection, connection)
    if body.credentials is not None or new_legacy is not False or moved:
        incoming = _plain(body.credentials or {})
        secret_names = set(secret_field_names(ct.credentials_model))
        if moved:
            missing = sorted(n for n in secret_names if n in row.credential_fields and incoming.get(n) is None)
            if missing:
                raise ValidationFailed(
                    "the connection target or its TLS trust changed: supply the secrets again",
                    fields=[FieldProblem(f"credentials.{n}", "must be supplied again when base_url, verify_tls or "
                                                             "ca_bundle changes") for n in missing],
                )
        with resolver.resolve(row, purpose=Purpose.CREDENTIAL_UPDATE, actor=principal.actor) as current:
            stored = dict(current.values)
        legacy = stored.pop(LEGACY_API_KEY, None)
        if moved and legacy and new_legacy is False:
            legacy = None  # a legacy key is not carried to a new host either
        for name, value in incoming.items():
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        if new_legacy is not False:
            legacy = new_legacy or None
        credentials = validate_credentials(ct, stored)
        row.encrypted_credentials = seal_credentials(keyring, row.id, _sealed_map(credentials, legacy))
        row.credential_fields = _secret_names(credentials, legacy)
        changed_secrets = sorted(f"credentials.{n}" for n in incoming) + \
            (["connection.api_key"] if new_legacy is not False else [])
    row.connection = connection
    if "enabled" in fields_set and body.enabled is not None:
        row.enabled = body.enabled
    if "allow_unsigned_webhooks" in fields_set and body.allow_unsigned_webhooks is not None:
        row.allow_unsigned_webhooks = body.allow_unsigned_webhooks
    if "severity_threshold" in fields_set and body.severity_threshold is not None:
        row.severity_threshold = body.severity_threshold
    row.updated_at = utcnow()
    changed = sorted(k for k, v in before.items() if getattr(row, k) != v)
    changed += sorted(f"connection.{k}" for k in set(old_connection) | set(connection)
                      if old_connection.get(k) != connection.get(k))
    if changed_secrets or any(name.startswith("connection.") for name in changed):
        row.last_tested_at = None  # the success it recorded was of other settings
    _audit(session, principal, "integration.update", row, {"changed": changed + changed_secrets})
    _commit(session)
    return row


def _target(connection: dict[str, Any]) -> tuple[str, str, int, str] | None:
    url = connection.get("base_url")
    return target_of(url) if url else None


def target_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether stored secrets may no longer go where ``new`` sends them: another base URL (scheme,
    host, port or path), or a weaker check of who answers there (TLS verification turned off, or
    another CA bundle trusted). Then the caller must supply the secrets again."""
    if _target(new) != _target(old):
        return True
    verify_dropped = old.get("verify_tls", True) is not False and new.get("verify_tls", True) is False
    other_ca = bool(new.get("ca_bundle")) and new.get("ca_bundle") != old.get("ca_bundle")
    return verify_dropped or other_ca


def _ensure_unique_name(session: Session, principal: Principal, name: str, exclude: uuid.UUID | None = None) -> None:
    stmt = principal.scoped(Integration, Integration.id).where(Integration.name == name)
    if exclude is not None:
        stmt = stmt.where(Integration.id != exclude)
    if session.scalar(stmt) is not None:
        raise Conflict("an integration with this name exists", fields=[FieldProblem("name", "is already used in this organization")])


def _commit(session: Session) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("an integration with this name exists", fields=[FieldProblem("name", "is already used in this organization")]) from None


def delete(session: Session, principal: Principal, row: Integration) -> None:
    """Delete an integration and its encrypted secrets."""
    _audit(session, principal, "integration.delete", row, {"vendor": row.vendor, "name": row.name})
    session.delete(row)
    session.commit()


# --- listing ----------------------------------------------------------------------------------

def list_page(session: Session, principal: Principal, *, limit: int, cursor: str | None, vendor: str | None = None,
              category: str | None = None) -> IntegrationPage:
    """One page, newest first, keyset-paginated on (created_at, id). Reads no secret column."""
    # the encrypted columns are not even read when listing
    stmt = principal.scoped(Integration).options(
        defer(Integration.encrypted_credentials), defer(Integration.encrypted_webhook_secret)
    )
    if vendor:
        stmt = stmt.where(Integration.vendor == vendor)
    if category:
        stmt = stmt.where(Integration.category == category)
    rows, next_cursor = split_page(session.scalars(newest_first(stmt, Integration, cursor, limit)).all(), limit)
    return IntegrationPage(items=[to_out(r) for r in rows], next_cursor=next_cursor)
